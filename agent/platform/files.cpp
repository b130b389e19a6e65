#include "agent/platform/files.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

namespace pha {

namespace {

std::string errno_text(int err) {
  return std::strerror(err);
}

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

// The temporary files of earlier writes of `path` whose writer died before
// its rename (kill -9, power loss): "<path>.tmp.<pid>" with a pid that is not
// ours and no longer runs. Without this each crash would leave one behind.
void remove_stale_temp_files(const std::string& dir, const std::string& path) {
  const auto prefix = std::filesystem::path(path).filename().string() + ".tmp.";
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto name = it->path().filename().string();
    if (!name.starts_with(prefix) || name.size() == prefix.size()) {
      continue;
    }
    const auto digits = name.substr(prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) {
      continue;
    }
    const auto pid = static_cast<pid_t>(std::stol(digits));
    if (pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) {
      ::unlink(it->path().c_str());
    }
  }
}

}  // namespace

Result<std::string> read_text_file(const std::string& path, std::size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Error{errno == ENOENT ? ErrorKind::not_found : ErrorKind::io, errno_text(errno)};
  }
  FdCloser closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return Error{ErrorKind::io, errno_text(errno)};
  }
  if (S_ISDIR(st.st_mode)) {
    return Error{ErrorKind::io, "is a directory"};
  }
  std::string out;
  char buf[8192];
  for (;;) {
    const auto n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Error{ErrorKind::io, errno_text(errno)};
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes) {
      return Error{ErrorKind::io, "larger than " + std::to_string(max_bytes) + " bytes"};
    }
  }
  return out;
}

Status write_file_atomic(const std::string& path, std::string_view content) {
  const auto slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Error{ErrorKind::io, "cannot create " + tmp + ": " + errno_text(errno)};
  }
  std::size_t done = 0;
  while (done < content.size()) {
    const auto n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      const auto err = errno_text(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return Error{ErrorKind::io, "cannot write " + tmp + ": " += err};
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const auto err = errno_text(errno);
    ::unlink(tmp.c_str());
    return Error{ErrorKind::io, "cannot flush " + tmp + ": " + err};
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const auto err = errno_text(errno);
    ::unlink(tmp.c_str());
    return Error{ErrorKind::io, "cannot rename " + tmp + " to " + path + ": " + err};
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  remove_stale_temp_files(dir, path);
  return {};
}

Result<std::string> RealSystemAccess::read_file(const std::string& path) {
  return read_text_file(path);
}

Result<DirListing> RealSystemAccess::list_dir(const std::string& path) {
  namespace fs = std::filesystem;
  DirListing listing;
  std::error_code ec;
  fs::directory_iterator it(path, ec);
  if (ec == std::errc::no_such_file_or_directory) {
    return listing;
  }
  for (const fs::directory_iterator end; !ec && it != end; it.increment(ec)) {
    // status() follows symlinks: a link to a regular file is a file. When the
    // type cannot be told (a dangling link) the entry counts as a file, so
    // that reading it reports why, instead of it being skipped unnoticed.
    std::error_code type_ec;
    const auto st = fs::status(it->path(), type_ec);
    listing.entries.push_back({it->path().filename().string(), type_ec || fs::is_regular_file(st)});
  }
  if (ec) {
    return Error{ErrorKind::io, ec.message()};
  }
  listing.exists = true;
  return listing;
}

bool RealSystemAccess::is_writable_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) &&
         ::access(path.c_str(), W_OK | X_OK) == 0;
}

Result<int> RealSystemAccess::count_pem_certificates(const std::string& path) {
  auto text = read_text_file(path, 16 << 20);
  if (!text) {
    return text.error();
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(text->data(), static_cast<int>(text->size())), &BIO_free);
  int count = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_free(cert);
    ++count;
  }
  ERR_clear_error();
  return count;
}

Result<bool> RealSystemAccess::has_pem_private_key(const std::string& path) {
  auto text = read_text_file(path);
  if (!text) {
    return text.error();
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(text->data(), static_cast<int>(text->size())), &BIO_free);
  // A callback that gives no passphrase: an encrypted key must not prompt on a terminal.
  auto no_passphrase = [](char*, int, int, void*) { return 0; };
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr);
  ERR_clear_error();
  if (key == nullptr) {
    return false;
  }
  EVP_PKEY_free(key);
  return true;
}

}  // namespace pha
