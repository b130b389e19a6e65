#pragma once
// Live<T>: a value read each time it is used. Either a constant (what tests
// and fixed parts pass) or a reader of the settings in force, so a reload
// reaches a component without a setter: it reads again the next time it acts
// (docs/architecture.md "Settings").

#include <functional>
#include <type_traits>
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

  // A Live value of one part of this one, read through it each time.
  template <class F>
  auto map(F part) const {
    using U = std::decay_t<std::invoke_result_t<F, const T&>>;
    return Live<U>(std::function<U()>([read = read_, part] { return part(read()); }));
  }

 private:
  std::function<T()> read_;
};

}  // namespace pha
