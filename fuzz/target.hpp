#pragma once
// What every fuzz target defines: libFuzzer's entry point. The same source is
// linked either with libFuzzer (PHA_FUZZ, clang) or with replay_main.cpp,
// which runs the seed corpus and the regression inputs through it as a test.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace pha::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A property of the code under test that must hold for every input: when it
// does not, the input is a finding (abort, so libFuzzer keeps it).
inline void require(bool holds, const char* what) {
  if (!holds) {
    std::fprintf(stderr, "fuzz property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace pha::fuzz
