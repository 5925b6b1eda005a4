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
  EXPECT_EQ(ins[0].text, "echo a && echo b");
  EXPECT_EQ(ins[0].line, 4);
  EXPECT_EQ(ins[1].flags.at("chown"), "1:2");
  EXPECT_EQ(ins[1].args, (std::vector<std::string>{"a", "b", "/dst/"}));
  EXPECT_EQ(ins[1].line, 7);
  EXPECT_TRUE(ins[2].json_form);
  EXPECT_EQ(ins[2].args.size(), 3u);
  EXPECT_EQ(f->stages[1].instructions[0].keyword, "ENTRYPOINT");
  EXPECT_FALSE(f->stages[1].instructions[0].json_form);
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
      {"FROM busybox\nCOPY onlyone\n", "Containerfile:2: COPY needs at least one source"},
      {"FROM busybox\nRUN --mount=type=cache true\n",
       "Containerfile:2: RUN does not support the flag --mount"},
      {"FROM busybox AS a\nFROM busybox AS a\n", "Containerfile:2: duplicate stage name 'a'"},
      {"FROM busybox\nCOPY --from=3 a b\n",
       "Containerfile:2: COPY --from=3 names no earlier stage"},
      {"FROM Not/Valid\n", "Containerfile:1: invalid image reference 'Not/Valid'"},
      {"FROM busybox\nENV\n", "Containerfile:2: ENV needs arguments"},
      {"FROM busybox\nLABEL a\n", "Containerfile:2: LABEL takes KEY=VALUE pairs"},
      {"", "Containerfile:1: no FROM instruction"},
  };
  for (const Case& c : cases) {
    auto f = ParseContainerfile(c.text, "Containerfile");
    ASSERT_FALSE(f.ok()) << c.text;
    EXPECT_EQ(f.status().message().rfind(c.want, 0), 0u) << f.status().message();
  }
}

TEST(ContainerfileTest, ExpandsVariables) {
  std::map<std::string, std::string> vars = {{"A", "x"}, {"EMPTY", ""}};
  EXPECT_EQ(ExpandVariables("$A/${A}/${B:-def}/${A:+alt}/${EMPTY:-e}/\\$A/$", vars),
            "x/x/def/alt/e/$A/$");
}

TEST(ContainerfileTest, SplitsWordsWithQuotes) {
  auto w = SplitWords(R"(a="b c" 'd e' f\ g)");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, (std::vector<std::string>{"a=b c", "d e", "f g"}));
  EXPECT_FALSE(SplitWords("\"open").ok());
}

}  // namespace
}  // namespace barge::oci
