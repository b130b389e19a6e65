// Fuzz target: the settings loader (agent/config/loader.*, validate.cpp and
// the settings table): the input is an env file, layered over the defaults
// and under an environment, then validated for the agent and for
// --list-guests. Either every error is listed or the settings load and
// render as --print-config; a secret's value never shows in either.

#include <string>

#include "agent/config/docs.hpp"
#include "agent/config/loader.hpp"
#include "fuzz/target.hpp"

namespace {

// Secrets the harness sets itself; the input never holds the marker (such
// inputs are skipped), so any "zq-" in an output is a leaked secret.
constexpr std::string_view kMarker = "zq-";
constexpr std::string_view kEnvFile = "fuzz.env";

class FakeSystem final : public pha::SystemAccess {
 public:
  explicit FakeSystem(std::string env_file_text) : env_file_text_(std::move(env_file_text)) {}

  pha::Result<std::string> read_file(const std::string& path) override {
    if (path == kEnvFile) {
      return env_file_text_;
    }
    if (path.find("missing") != std::string::npos) {
      return pha::Error{pha::ErrorKind::invalid, path + ": No such file or directory"};
    }
    return std::string("zq-file-secret-zq\n");
  }
  // No drop-ins: the input is the one env file.
  pha::Result<pha::DirListing> list_dir(const std::string&) override { return pha::DirListing{}; }
  bool is_writable_dir(const std::string& path) override {
    return path.starts_with("/var/lib/") || path.starts_with("/tmp");
  }
  pha::Result<int> count_pem_certificates(const std::string& path) override {
    if (path.find("missing") != std::string::npos) {
      return pha::Error{pha::ErrorKind::invalid, path + ": No such file or directory"};
    }
    return path.find("empty") != std::string::npos ? 0 : 1;
  }
  pha::Result<bool> has_pem_private_key(const std::string& path) override {
    return path.find("nokey") == std::string::npos;
  }

 private:
  std::string env_file_text_;
};

void require_no_secret(std::string_view text) {
  pha::fuzz::require(text.find(kMarker) == std::string_view::npos,
                     "a secret's value appears in the loader's output");
}

void load(const std::string& text, pha::Scope scope) {
  FakeSystem system(text);
  pha::LoadInput input;
  input.env_file = std::string(kEnvFile);
  input.environment = {{"PROXMOX_TOKEN_SECRET", "zq-token-secret-zq"},
                       {"AGENT_API_TOKEN", "zq-api-token-zq"}};
  input.scope = scope;
  auto outcome = pha::load_settings(input, system);
  if (auto* errors = std::get_if<pha::ConfigErrors>(&outcome)) {
    pha::fuzz::require(!errors->errors.empty(), "a refused configuration says why");
    for (const auto& e : errors->errors) {
      require_no_secret(e);
    }
    return;
  }
  const auto& config = std::get<pha::LoadedConfig>(outcome);
  for (const auto& w : config.warnings) {
    require_no_secret(w);
  }
  require_no_secret(pha::print_config_json(config).dump(-1, ' ', false,
                                                        nlohmann::json::error_handler_t::replace));
  pha::fuzz::require(!config.settings.accountdb_endpoints.empty() || scope != pha::Scope::agent,
                     "the agent has an AccountDB endpoint");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(pha::fuzz::as_text(data, size));
  if (text.find(kMarker) != std::string::npos) {
    return 0;
  }
  load(text, pha::Scope::agent);
  load(text, pha::Scope::proxmox_only);
  return 0;
}
