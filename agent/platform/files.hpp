#pragma once
// The filesystem as the config layer and the state files see it.

#include <string>

#include "agent/config/loader.hpp"
#include "agent/core/result.hpp"

namespace pha {

// Reads a whole file of at most `max_bytes`; the error says why not
// ("No such file or directory", "Permission denied", "larger than 1 MiB").
Result<std::string> read_text_file(const std::string& path, std::size_t max_bytes = 1 << 20);

// Writes `content` so that a crash at any point leaves either the old file or
// the new one: a temporary file in the same directory, fsync, rename, fsync of
// the directory. Temporary files that earlier writers of `path` left when they
// died before their rename are removed.
Status write_file_atomic(const std::string& path, std::string_view content);

class RealSystemAccess final : public SystemAccess {
 public:
  Result<std::string> read_file(const std::string& path) override;
  Result<DirListing> list_dir(const std::string& path) override;
  bool is_writable_dir(const std::string& path) override;
  Result<int> count_pem_certificates(const std::string& path) override;
  Result<bool> has_pem_private_key(const std::string& path) override;
};

}  // namespace pha
