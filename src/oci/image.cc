#include "oci/image.h"

#include <fmt/core.h>

#include <ctime>

#include "oci/digest.h"

namespace barge::oci {

using nlohmann::json;

json Descriptor::ToJson() const {
  json j = {{"mediaType", media_type}, {"digest", digest}, {"size", size}};
  if (!annotations.empty()) j["annotations"] = annotations;
  return j;
}

Result<Descriptor> Descriptor::FromJson(const json& j, std::string_view what) {
  if (!j.is_object()) return Corruption(fmt::format("{}: descriptor is not a JSON object", what));
  Descriptor d;
  auto media = j.find("mediaType");
  auto digest = j.find("digest");
  auto size = j.find("size");
  if (media == j.end() || !media->is_string())
    return Corruption(fmt::format("{}: descriptor has no mediaType", what));
  if (digest == j.end() || !digest->is_string())
    return Corruption(fmt::format("{}: descriptor has no digest", what));
  if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 0)
    return Corruption(fmt::format("{}: descriptor has no valid size", what));
  d.media_type = media->get<std::string>();
  d.digest = digest->get<std::string>();
  d.size = size->get<int64_t>();
  if (Status st = ValidateDigest(d.digest); !st.ok())
    return Corruption(fmt::format("{}: {}", what, st.message()));
  if (auto a = j.find("annotations"); a != j.end() && a->is_object()) {
    for (auto& [k, v] : a->items()) {
      if (v.is_string()) d.annotations[k] = v.get<std::string>();
    }
  }
  return d;
}

bool IsLayerMediaType(std::string_view m) {
  return m == kMediaTypeLayer || m == kMediaTypeLayerGzip || m == kMediaTypeLayerZstd ||
         m == kMediaTypeDockerLayerGzip || m == "application/vnd.docker.image.rootfs.diff.tar";
}

namespace {

Result<std::vector<std::string>> StringArray(const json& j, std::string_view field) {
  std::vector<std::string> out;
  if (j.is_null()) return out;
  if (!j.is_array()) return Corruption(fmt::format("image config: {} is not an array", field));
  for (const json& v : j) {
    if (!v.is_string()) return Corruption(fmt::format("image config: {} has a non-string", field));
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

std::string StringField(const json& j, const char* key, std::string_view fallback) {
  if (!j.is_object()) return std::string(fallback);
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string(fallback);
}

json ImageConfig::ToJson() const {
  json j = json::object();
  if (!env.empty()) j["Env"] = env;
  if (!entrypoint.empty()) j["Entrypoint"] = entrypoint;
  if (!cmd.empty()) j["Cmd"] = cmd;
  if (!working_dir.empty()) j["WorkingDir"] = working_dir;
  if (!user.empty()) j["User"] = user;
  if (!exposed_ports.empty()) {
    json ports = json::object();
    for (const std::string& p : exposed_ports) ports[p] = json::object();
    j["ExposedPorts"] = ports;
  }
  if (!labels.empty()) j["Labels"] = labels;
  if (!stop_signal.empty()) j["StopSignal"] = stop_signal;
  return j;
}

Result<ImageConfig> ImageConfig::FromJson(const json& j) {
  ImageConfig c;
  if (j.is_null()) return c;
  if (!j.is_object()) return Corruption("image config: config is not an object");
  auto get = [&](const char* key) { return j.contains(key) ? j.at(key) : json(); };
  ASSIGN_OR_RETURN(c.env, StringArray(get("Env"), "Env"));
  ASSIGN_OR_RETURN(c.entrypoint, StringArray(get("Entrypoint"), "Entrypoint"));
  ASSIGN_OR_RETURN(c.cmd, StringArray(get("Cmd"), "Cmd"));
  c.working_dir = StringField(j, "WorkingDir");
  c.user = StringField(j, "User");
  c.stop_signal = StringField(j, "StopSignal");
  if (json ports = get("ExposedPorts"); ports.is_object()) {
    for (auto& [k, v] : ports.items()) c.exposed_ports.push_back(k);
  }
  if (json labels = get("Labels"); labels.is_object()) {
    for (auto& [k, v] : labels.items()) {
      if (v.is_string()) c.labels[k] = v.get<std::string>();
    }
  }
  return c;
}

std::string Image::ShortId() const { return config_digest.substr(kSha256Prefix.size(), 12); }

int64_t Image::Size() const {
  int64_t total = 0;
  for (const Descriptor& l : layers) total += l.size;
  return total;
}

namespace {

Result<Image> ParseImageUnchecked(const Descriptor& manifest, std::string_view manifest_json,
                                  std::string_view config_json) {
  std::string what = "manifest " + manifest.digest;
  Image image;
  image.manifest = manifest;
  image.manifest_document = json::parse(manifest_json, nullptr, false);
  if (image.manifest_document.is_discarded() || !image.manifest_document.is_object())
    return Corruption(what + ": not valid JSON");
  const json& m = image.manifest_document;
  auto schema = m.find("schemaVersion");
  if (schema == m.end() || !schema->is_number_integer() || schema->get<int64_t>() != 2)
    return Corruption(what + ": schemaVersion is not 2");
  auto media_it = m.find("mediaType");
  if (media_it != m.end() && !media_it->is_string())
    return Corruption(what + ": mediaType is not a string");
  std::string media =
      media_it == m.end() ? std::string(kMediaTypeManifest) : media_it->get<std::string>();
  if (media != kMediaTypeManifest && media != kMediaTypeDockerManifest)
    return Corruption(fmt::format("{}: unsupported mediaType '{}'", what, media));
  if (!m.contains("config")) return Corruption(what + ": no config descriptor");
  ASSIGN_OR_RETURN(Descriptor config, Descriptor::FromJson(m["config"], what + " config"));
  if (config.media_type != kMediaTypeConfig && config.media_type != kMediaTypeDockerConfig)
    return Corruption(fmt::format("{}: config has mediaType '{}'", what, config.media_type));
  image.config_digest = config.digest;
  if (!m.contains("layers") || !m["layers"].is_array()) return Corruption(what + ": no layers");
  for (const json& l : m["layers"]) {
    ASSIGN_OR_RETURN(Descriptor layer, Descriptor::FromJson(l, what + " layer"));
    if (!IsLayerMediaType(layer.media_type))
      return Corruption(fmt::format("{}: layer {} has unsupported mediaType '{}'", what,
                                    layer.digest, layer.media_type));
    image.layers.push_back(std::move(layer));
  }

  std::string cwhat = "image config " + config.digest;
  image.config_document = json::parse(config_json, nullptr, false);
  if (image.config_document.is_discarded() || !image.config_document.is_object())
    return Corruption(cwhat + ": not valid JSON");
  const json& c = image.config_document;
  image.architecture = StringField(c, "architecture");
  image.os = StringField(c, "os");
  image.created = StringField(c, "created");
  if (c.contains("config")) {
    Result<ImageConfig> ic = ImageConfig::FromJson(c["config"]);
    if (!ic.ok()) return ic.status().Wrap(cwhat);
    image.config = std::move(*ic);
  }
  if (!c.contains("rootfs") || !c["rootfs"].is_object() || !c["rootfs"].contains("diff_ids"))
    return Corruption(cwhat + ": no rootfs.diff_ids");
  Result<std::vector<std::string>> diff_ids = StringArray(c["rootfs"]["diff_ids"], "diff_ids");
  if (!diff_ids.ok()) return diff_ids.status().Wrap(cwhat);
  for (const std::string& d : *diff_ids) {
    if (Status st = ValidateDigest(d); !st.ok()) return st.Wrap(cwhat);
  }
  if (diff_ids->size() != image.layers.size()) {
    return Corruption(fmt::format("{}: {} layers but {} diff_ids in config {}", what,
                                  image.layers.size(), diff_ids->size(), config.digest));
  }
  image.diff_ids = std::move(*diff_ids);
  return image;
}

}  // namespace

Result<Image> ParseImage(const Descriptor& manifest, std::string_view manifest_json,
                         std::string_view config_json) {
  try {
    return ParseImageUnchecked(manifest, manifest_json, config_json);
  } catch (const json::exception& e) {  // a field of a type the checks above did not expect
    return Corruption(fmt::format("image {}: {}", manifest.digest, e.what()));
  }
}

std::string NowRfc3339() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace barge::oci
