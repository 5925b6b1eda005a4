#include "oci/containerfile.h"

#include <gtest/gtest.h>

namespace barge::oci {
namespace {

TEST(ContainerfileTest, ParsesContinuationsCommentsAndForms) {
  auto f = ParseContainerfile(
      "# syntax comment\n"
      "ARG BASE=busybox\n"
      "FROM ${BASE} AS build\n"
      "RUN echo a \\\n"
      "  # a comment inside a continuation\n"
      "  && echo b\n"
      "COPY --chown=1:2 --from=other:1 a b /dst/\n"
      "CMD [\"/bin/sh\", \"-c\", \"echo hi\"]\n"
      "\n"
      "from scratch\n"
      "ENTRYPOINT echo x\n",
      "Containerfile");
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_EQ(f->global_args.size(), 1u);
  ASSERT_EQ(f->stages.size(), 2u);
  EXPECT_EQ(f->stages[0].name, "build");
  EXPECT_EQ(f->stages[0].base, "${BASE}");
  const auto& ins = f->stages[0].instructions;
  ASSERT_EQ(ins.size(), 3u);
  // As BuildKit joins lines: the escape goes, the next line's leading whitespace stays.
  EXPECT_EQ(ins[0].text, "echo a   && echo b");
  EXPECT_EQ(ins[0].line, 4);
  EXPECT_EQ(ins[1].flags.at("chown"), "1:2");
  EXPECT_EQ(ins[1].args, (std::vector<std::string>{"a", "b", "/dst/"}));
  EXPECT_EQ(ins[1].line, 7);
  EXPECT_TRUE(ins[2].json_form);
  EXPECT_EQ(ins[2].args.size(), 3u);
  EXPECT_EQ(f->stages[1].instructions[0].keyword, "ENTRYPOINT");
  EXPECT_FALSE(f->stages[1].instructions[0].json_form);
  EXPECT_TRUE(f->warnings.empty());
}

TEST(ContainerfileTest, EmptyContinuationLinesAreSkippedWithAWarning) {
  auto f = ParseContainerfile("FROM scratch\nRUN echo a \\\n\n   \n  b\nCMD x\n", "Dockerfile");
  ASSERT_TRUE(f.ok()) << f.status().message();
  ASSERT_EQ(f->stages[0].instructions.size(), 2u);
  EXPECT_EQ(f->stages[0].instructions[0].text, "echo a   b");
  ASSERT_EQ(f->warnings.size(), 1u);
  EXPECT_EQ(f->warnings[0].rfind("Dockerfile:2: empty continuation line", 0), 0u) << f->warnings[0];
}

TEST(ContainerfileTest, EscapeDirective) {
  auto f = ParseContainerfile(
      "# escape=`\n"
      "FROM scratch\n"
      "COPY C:\\src\\app /app\n"
      "RUN echo a `\n"
      "    b\n"
      "ENV P=x`$y\n",
      "Containerfile");
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->escape, '`');
  const auto& ins = f->stages[0].instructions;
  ASSERT_EQ(ins.size(), 3u);
  EXPECT_EQ(ins[0].args[0], "C:\\src\\app");
  EXPECT_EQ(ins[1].text, "echo a     b");
  ShellLexer lex(f->escape);
  EXPECT_EQ(*lex.Word(ins[2].pairs[0].second, {{"y", "Y"}}), "x$y");
  // Only before anything else: after a comment or a blank line it is a comment.
  f = ParseContainerfile("# hello\n# escape=`\nFROM scratch\nRUN a \\\n b\n", "Containerfile");
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->escape, '\\');
  EXPECT_EQ(f->stages[0].instructions[0].text, "a  b");
  auto bad = ParseContainerfile("# escape=x\nFROM scratch\n", "Containerfile");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "Containerfile:1: invalid escape token 'x' does not match ` or \\");
  bad = ParseContainerfile("# escape=`\n# ESCAPE=\\\nFROM scratch\n", "Containerfile");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "Containerfile:2: only one escape parser directive can be used");
}

TEST(ContainerfileTest, Heredocs) {
  auto f = ParseContainerfile(
      "FROM scratch\n"
      "RUN <<EOF\n"
      "echo one\n"
      "echo two\n"
      "EOF\n"
      "COPY <<-\"END\" <<two /etc/\n"
      "\tindented $HOME\n"
      "\tEND\n"
      "second\n"
      "two\n"
      "RUN python3 <<'PY' > /out\n"
      "print(1)\n"
      "PY\n"
      "ONBUILD RUN <<EOF\n"
      "echo later\n"
      "EOF\n",
      "Containerfile");
  ASSERT_TRUE(f.ok()) << f.status().message();
  const auto& ins = f->stages[0].instructions;
  ASSERT_EQ(ins.size(), 4u);
  EXPECT_EQ(ins[0].text, "<<EOF");
  ASSERT_EQ(ins[0].heredocs.size(), 1u);
  EXPECT_EQ(ins[0].heredocs[0].name, "EOF");
  EXPECT_EQ(ins[0].heredocs[0].content, "echo one\necho two\n");
  EXPECT_TRUE(ins[0].heredocs[0].expand);
  ASSERT_EQ(ins[1].heredocs.size(), 2u);
  EXPECT_EQ(ins[1].heredocs[0].name, "END");
  EXPECT_TRUE(ins[1].heredocs[0].chomp);
  EXPECT_FALSE(ins[1].heredocs[0].expand);
  EXPECT_EQ(ins[1].heredocs[0].Body(), "indented $HOME\n");
  EXPECT_EQ(ins[1].heredocs[1].content, "second\n");
  EXPECT_EQ(ins[1].args, (std::vector<std::string>{"<<-\"END\"", "<<two", "/etc/"}));
  EXPECT_EQ(ins[2].heredocs[0].name, "PY");
  EXPECT_FALSE(ins[2].heredocs[0].expand);
  EXPECT_EQ(ins[3].trigger, "RUN <<EOF\necho later\nEOF");
  EXPECT_EQ(ins[3].line, 14);

  // Inside JSON or quotes there is no heredoc.
  f = ParseContainerfile("FROM scratch\nRUN [\"sh\", \"-c\", \"cat <<EOF\"]\nRUN echo '<<X'\n",
                         "Containerfile");
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_TRUE(f->stages[0].instructions[0].heredocs.empty());
  EXPECT_TRUE(f->stages[0].instructions[1].heredocs.empty());

  auto bad = ParseContainerfile("FROM scratch\nRUN <<EOF\necho\n", "Containerfile");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "Containerfile:2: unterminated heredoc 'EOF'");
  bad = ParseContainerfile("FROM scratch\nCOPY a <<EOF\nx\nEOF\n", "Containerfile");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "Containerfile:2: COPY cannot take a heredoc as its destination");
}

TEST(ContainerfileTest, EnvAndLabelPairsKeepTheirQuotesForTheLexer) {
  auto f = ParseContainerfile(
      "FROM scratch\n"
      "ENV A=\"x y\" B='$HOME' C=\\$D\n"
      "ENV OLD  value with  spaces\n"
      "LABEL \"com.example.key\"=\"v\" other=1\n"
      "LABEL old form\n",
      "Containerfile");
  ASSERT_TRUE(f.ok()) << f.status().message();
  const auto& ins = f->stages[0].instructions;
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(ins[0].pairs, (Pairs{{"A", "\"x y\""}, {"B", "'$HOME'"}, {"C", "\\$D"}}));
  EXPECT_EQ(ins[1].pairs, (Pairs{{"OLD", "value with  spaces"}}));
  EXPECT_EQ(ins[2].pairs, (Pairs{{"\"com.example.key\"", "\"v\""}, {"other", "1"}}));
  EXPECT_EQ(ins[3].pairs, (Pairs{{"old", "form"}}));
}

TEST(ContainerfileTest, FlagsTakeQuotesAndEndAtTheFirstOtherWord) {
  auto f = ParseContainerfile(
      "FROM scratch\n"
      "COPY --chown=\"app:app\" --link --chmod='0644' a --b /c/\n"
      "COPY -- --from=x /y\n",
      "Containerfile");
  ASSERT_TRUE(f.ok()) << f.status().message();
  const auto& ins = f->stages[0].instructions;
  EXPECT_EQ(ins[0].flags, (std::map<std::string, std::string>{
                              {"chown", "app:app"}, {"link", "true"}, {"chmod", "0644"}}));
  EXPECT_EQ(ins[0].args, (std::vector<std::string>{"a", "--b", "/c/"}));
  EXPECT_TRUE(ins[1].flags.empty());
  EXPECT_EQ(ins[1].args, (std::vector<std::string>{"--from=x", "/y"}));
}

TEST(ContainerfileTest, ErrorsNameFileAndLine) {
  struct Case {
    const char* text;
    const char* want;
  } cases[] = {
      {"FROM busybox\nRUN true\nFROBNICATE x\n",
       "Containerfile:3: unknown instruction 'FROBNICATE'"},
      {"RUN true\n", "Containerfile:1: the first instruction must be FROM"},
      {"FROM busybox\nADD https://example.com/x.tar /x\n",
       "Containerfile:2: ADD from a URL is not supported"},
      {"FROM busybox\nEXPOSE 99999\n", "Containerfile:2: EXPOSE: invalid port '99999'"},
      {"FROM busybox\nEXPOSE 80/icmp\n", "Containerfile:2: EXPOSE: invalid port '80/icmp'"},
      {"FROM busybox\nEXPOSE 90-80\n", "Containerfile:2: EXPOSE: invalid port '90-80'"},
      {"FROM busybox\nCOPY onlyone\n", "Containerfile:2: COPY needs at least one source"},
      {"FROM busybox\nRUN --mount=type=cache true\n",
       "Containerfile:2: RUN does not support the flag --mount"},
      {"FROM busybox\nCOPY --chown=1 --chown=2 a b\n",
       "Containerfile:2: --chown is given more than once"},
      {"FROM busybox\nCOPY --chmod=9 a b\n", "Containerfile:2: --chmod=9: not an octal mode"},
      {"FROM busybox AS a\nFROM busybox AS a\n", "Containerfile:2: duplicate stage name 'a'"},
      {"FROM busybox AS 1st\n", "Containerfile:1: invalid stage name '1st'"},
      {"FROM busybox\nCOPY --from=3 a b\n",
       "Containerfile:2: COPY --from=3 names no earlier stage"},
      {"FROM Not/Valid\n", "Containerfile:1: invalid image reference 'Not/Valid'"},
      {"FROM busybox\nENV\n", "Containerfile:2: ENV needs arguments"},
      {"FROM busybox\nENV A=1 B\n", "Containerfile:2: ENV expects KEY=VALUE, got 'B'"},
      {"FROM busybox\nLABEL a\n", "Containerfile:2: LABEL takes KEY=VALUE pairs"},
      {"FROM busybox\nCMD [\"a\", 1]\n",
       "Containerfile:2: when using JSON array syntax, arrays must be comprised of strings only"},
      {"FROM busybox\nSHELL sh -c\n", "Containerfile:2: SHELL must be a JSON array"},
      {"FROM busybox\nHEALTHCHECK NONE x\n",
       "Containerfile:2: HEALTHCHECK NONE takes no arguments"},
      {"FROM busybox\nHEALTHCHECK CURL x\n", "Containerfile:2: HEALTHCHECK takes CMD or NONE"},
      {"FROM busybox\nHEALTHCHECK --interval=10 CMD true\n",
       "Containerfile:2: --interval: invalid duration '10'"},
      {"FROM busybox\nHEALTHCHECK --timeout=1us CMD true\n",
       "Containerfile:2: --timeout=1us is less than 1ms"},
      {"FROM busybox\nHEALTHCHECK --retries=-1 CMD true\n",
       "Containerfile:2: --retries=-1: not a number"},
      {"FROM busybox\nONBUILD ONBUILD RUN x\n", "Containerfile:2: ONBUILD ONBUILD is not allowed"},
      {"FROM busybox\nONBUILD FROM x\n",
       "Containerfile:2: FROM is not allowed as an ONBUILD trigger"},
      {"FROM busybox\nONBUILD BOGUS x\n", "Containerfile:2: unknown instruction 'BOGUS'"},
      {"", "Containerfile:1: no FROM instruction"},
  };
  for (const Case& c : cases) {
    auto f = ParseContainerfile(c.text, "Containerfile");
    ASSERT_FALSE(f.ok()) << c.text;
    EXPECT_EQ(f.status().message().rfind(c.want, 0), 0u) << f.status().message();
  }
}

TEST(ContainerfileTest, TriggersParseAlone) {
  auto t = ParseTrigger("COPY --chown=app . /src", "ONBUILD of image 'base:1'");
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->keyword, "COPY");
  EXPECT_EQ(t->flags.at("chown"), "app");
  t = ParseTrigger("RUN <<EOF\necho hi\nEOF", "trigger");
  ASSERT_TRUE(t.ok()) << t.status().message();
  ASSERT_EQ(t->heredocs.size(), 1u);
  EXPECT_EQ(t->heredocs[0].content, "echo hi\n");
  t = ParseTrigger("FROM x", "ONBUILD of image 'base:1'");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "ONBUILD of image 'base:1': FROM is not allowed as a trigger");
  t = ParseTrigger("NOPE x", "ONBUILD of image 'base:1'");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "ONBUILD of image 'base:1': unknown instruction 'NOPE'");
}

TEST(ContainerfileTest, LexerQuotesAndEscapesStopExpansion) {
  ShellLexer lex;
  ShellLexer::Vars vars = {{"A", "x"}, {"EMPTY", ""}, {"S", "a b"}};
  auto word = [&](const char* text) {
    auto r = lex.Word(text, vars);
    EXPECT_TRUE(r.ok()) << text << ": " << r.status().message();
    return r.ok() ? *r : "<error>";
  };
  EXPECT_EQ(word("'$A'"), "$A");
  EXPECT_EQ(word("\"$A\""), "x");
  EXPECT_EQ(word("\\$A"), "$A");
  EXPECT_EQ(word("\"\\$A\""), "$A");
  EXPECT_EQ(word("'it'\\''s'"), "it's");
  EXPECT_EQ(word("\"a\\b\""), "a\\b");  // inside "", only \" \$ \\ are escapes
  EXPECT_EQ(word("a\\ b"), "a b");
  EXPECT_EQ(word("$A/${A}/$"), "x/x/$");
  EXPECT_EQ(word("${B:-def}|${EMPTY:-e}|${EMPTY-e}|${B-u}"), "def|e||u");
  EXPECT_EQ(word("${A:+alt}|${EMPTY:+alt}|${EMPTY+alt}|${B+alt}"), "alt||alt|");
  EXPECT_EQ(word("${A:-'q $A'}"), "x");
  EXPECT_EQ(word("${B:-\"$A y\"}"), "x y");
  EXPECT_EQ(word("$1$@x"), "x");
}

TEST(ContainerfileTest, LexerPatternsAndErrors) {
  ShellLexer lex;
  ShellLexer::Vars vars = {{"P", "/usr/local/bin/tool.tar.gz"}};
  auto word = [&](const char* text) { return *lex.Word(text, vars); };
  EXPECT_EQ(word("${P#*/}"), "usr/local/bin/tool.tar.gz");
  EXPECT_EQ(word("${P##*/}"), "tool.tar.gz");
  EXPECT_EQ(word("${P%.*}"), "/usr/local/bin/tool.tar");
  EXPECT_EQ(word("${P%%.*}"), "/usr/local/bin/tool");
  EXPECT_EQ(word("${P/local/opt}"), "/usr/opt/bin/tool.tar.gz");
  EXPECT_EQ(word("${P//o/0}"), "/usr/l0cal/bin/t00l.tar.gz");
  EXPECT_EQ(word("${NONE#x}"), "");

  auto err = [&](const char* text) {
    auto r = lex.Word(text, vars);
    EXPECT_FALSE(r.ok()) << text;
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_EQ(err("${P"), "'${P': syntax error: missing '}'");
  EXPECT_EQ(err("${}"), "'${}': syntax error: bad substitution");
  EXPECT_EQ(err("${P:=x}"), "'${P:=x}': unsupported modifier (:=) in substitution");
  EXPECT_EQ(err("${NONE:?must be set}"), "'${NONE:?must be set}': NONE: must be set");
  EXPECT_EQ(err("${NONE?}"), "'${NONE?}': NONE: is not allowed to be unset");
  EXPECT_EQ(err("'open"),
            "''open': unexpected end of statement while looking for matching single-quote");
  EXPECT_EQ(err("\"open"),
            "'\"open': unexpected end of statement while looking for matching double-quote");
}

TEST(ContainerfileTest, LexerWordsSplitAfterSubstitution) {
  ShellLexer lex;
  auto w = lex.Words("a \"b c\" $S '' d\\ e", {{"S", "x  y"}});
  ASSERT_TRUE(w.ok()) << w.status().message();
  EXPECT_EQ(*w, (std::vector<std::string>{"a", "b c", "x", "y", "d e"}));
  ShellLexer raw;
  raw.raw_quotes = true;
  raw.skip_unset = true;
  EXPECT_EQ(*raw.Word("'$A' \"$B\" ${C:-d}", {}), "'$A' \"$B\" ${C:-d}");
  ShellLexer content;
  content.skip_quotes = true;
  EXPECT_EQ(*content.Word("it's \"$A\"\n", {{"A", "x"}}), "it's \"x\"\n");
}

TEST(ContainerfileTest, PortSpecs) {
  using V = std::vector<std::string>;
  EXPECT_EQ(*ParsePortSpec("80"), V{"80/tcp"});
  EXPECT_EQ(*ParsePortSpec("53/UDP"), V{"53/udp"});
  EXPECT_EQ(*ParsePortSpec("8000-8002/tcp"), (V{"8000/tcp", "8001/tcp", "8002/tcp"}));
  EXPECT_EQ(*ParsePortSpec("127.0.0.1:8080:80"), V{"80/tcp"});
  EXPECT_EQ(*ParsePortSpec("0"), V{"0/tcp"});
  for (const char* bad : {"", "x", "65536", "80/icmp", "9-8", "80-", "-1"}) {
    EXPECT_FALSE(ParsePortSpec(bad).ok()) << bad;
  }
}

TEST(ContainerfileTest, GoDurations) {
  EXPECT_EQ(*ParseGoDuration("30s"), 30'000'000'000);
  EXPECT_EQ(*ParseGoDuration("1m30s"), 90'000'000'000);
  EXPECT_EQ(*ParseGoDuration("1.5h"), 5'400'000'000'000);
  EXPECT_EQ(*ParseGoDuration("250ms"), 250'000'000);
  EXPECT_EQ(*ParseGoDuration("0"), 0);
  for (const char* bad : {"", "10", "s", "1x", "1..2s"})
    EXPECT_FALSE(ParseGoDuration(bad).ok()) << bad;
}

}  // namespace
}  // namespace barge::oci
