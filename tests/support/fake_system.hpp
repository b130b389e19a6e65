#pragma once
// A filesystem for config tests: files and directories exist only when a test
// says so.

#include <map>
#include <set>
#include <string>

#include "agent/config/loader.hpp"

namespace pha::test {

class FakeSystemAccess final : public SystemAccess {
 public:
  std::map<std::string, std::string> files;
  std::set<std::string> writable_dirs;
  std::map<std::string, int> certificates;  // path -> number of PEM certificates
  std::set<std::string> private_keys;

  Result<std::string> read_file(const std::string& path) override {
    const auto it = files.find(path);
    if (it == files.end()) {
      return Error{"No such file or directory"};
    }
    return it->second;
  }
  bool is_writable_dir(const std::string& path) override { return writable_dirs.contains(path); }
  Result<int> count_pem_certificates(const std::string& path) override {
    if (!files.contains(path)) {
      return Error{"No such file or directory"};
    }
    const auto it = certificates.find(path);
    return it == certificates.end() ? 0 : it->second;
  }
  Result<bool> has_pem_private_key(const std::string& path) override {
    if (!files.contains(path)) {
      return Error{"No such file or directory"};
    }
    return private_keys.contains(path);
  }
};

}  // namespace pha::test
