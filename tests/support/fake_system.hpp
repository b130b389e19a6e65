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
  // Directories that exist besides those that hold one of `files`; one inside
  // another is listed as an entry that is not a file.
  std::set<std::string> dirs;
  std::set<std::string> unreadable;  // files and directories: "Permission denied"
  std::set<std::string> writable_dirs;
  std::map<std::string, int> certificates;  // path -> number of PEM certificates
  std::set<std::string> private_keys;

  Result<std::string> read_file(const std::string& path) override {
    if (unreadable.contains(path)) {
      return Error{ErrorKind::io, "Permission denied"};
    }
    const auto it = files.find(path);
    if (it == files.end()) {
      return Error{ErrorKind::io, "No such file or directory"};
    }
    return it->second;
  }
  // Entries in the order of the maps, which is the byte-wise one: the
  // loader must not rely on it, so they are listed in reverse.
  Result<DirListing> list_dir(const std::string& path) override {
    if (unreadable.contains(path)) {
      return Error{ErrorKind::io, "Permission denied"};
    }
    DirListing listing;
    listing.exists = dirs.contains(path);
    const auto add = [&](const std::string& entry, bool is_file) {
      const auto prefix = path + "/";
      if (entry.starts_with(prefix) && entry.find('/', prefix.size()) == std::string::npos) {
        listing.entries.insert(listing.entries.begin(), {entry.substr(prefix.size()), is_file});
        listing.exists = true;
      }
    };
    for (const auto& [file, text] : files) {
      add(file, true);
    }
    for (const auto& dir : dirs) {
      add(dir, false);
    }
    return listing;
  }
  bool is_writable_dir(const std::string& path) override { return writable_dirs.contains(path); }
  Result<int> count_pem_certificates(const std::string& path) override {
    if (!files.contains(path)) {
      return Error{ErrorKind::io, "No such file or directory"};
    }
    const auto it = certificates.find(path);
    return it == certificates.end() ? 0 : it->second;
  }
  Result<bool> has_pem_private_key(const std::string& path) override {
    if (!files.contains(path)) {
      return Error{ErrorKind::io, "No such file or directory"};
    }
    return private_keys.contains(path);
  }
};

}  // namespace pha::test
