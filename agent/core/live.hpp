#pragma once
// Live<T>: a value read each time it is used. Either a constant (what tests
// and fixed parts pass) or a reader of the settings in force, so a reload
// reaches a component without a setter: it reads again the next time it acts
// (docs/architecture.md "Settings").

#include <functional>
#include <utility>

namespace pha {

template <class T>
class Live {
 public:
  // NOLINTNEXTLINE(google-explicit-constructor): a constant is a Live value
  Live(T constant) : read_([value = std::move(constant)] { return value; }) {}
  explicit Live(std::function<T()> read) : read_(std::move(read)) {}
  Live() : Live(T{}) {}

  T operator()() const { return read_(); }

 private:
  std::function<T()> read_;
};

}  // namespace pha
