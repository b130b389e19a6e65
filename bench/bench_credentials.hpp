#pragma once
// The credentials the benchmarks give the simulators and the agent (test
// values, never real secrets), shared so the benches cannot drift apart.

#include <string>

namespace pha::bench {

inline const std::string kTokenId = "bench@pve!sync";
inline const std::string kTokenSecret = "0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e";
inline const std::string kKey = "BenchKeyBenchKeyBenchKeyBenchKeyBenchKey123";

}  // namespace pha::bench
