// write_file_atomic (platform/files): the state files' writes leave either the
// old or the new file, and no temporary file of a writer that died.

#include <filesystem>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>

#include "agent/platform/files.hpp"
#include "tests/support/process.hpp"

using namespace pha;
namespace fs = std::filesystem;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("state files: a write replaces the file and leaves no temporary file") {
  test::TempDir dir;
  const auto path = dir.path() + "/sync-state.json";
  REQUIRE(write_file_atomic(path, "{\"a\":1}\n"));
  REQUIRE(write_file_atomic(path, "{\"a\":2}\n"));
  CHECK(slurp(path) == "{\"a\":2}\n");
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) {
    ++files;
  }
  CHECK(files == 1);
}

TEST_CASE("state files: temporary files of writers killed before their rename are removed") {
  test::TempDir dir;
  const auto path = dir.path() + "/whitelist.json";
  // What kill -9 between the write and the rename leaves: pid 999999999 runs nowhere.
  const auto stale = dir.write("whitelist.json.tmp.999999999", "{\"half");
  // A live writer's file (pid 1, init, always runs) and other files stay.
  const auto live = dir.write("whitelist.json.tmp.1", "{}");
  const auto other = dir.write("sync-state.json.tmp.999999999", "{}");
  const auto odd = dir.write("whitelist.json.tmp.x1", "{}");
  REQUIRE(write_file_atomic(path, "[1,2]\n"));
  CHECK(slurp(path) == "[1,2]\n");
  CHECK_FALSE(fs::exists(stale));
  CHECK(fs::exists(live));
  CHECK(fs::exists(other));  // another file's: removed when that file is written
  CHECK(fs::exists(odd));
}
