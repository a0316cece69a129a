// Engine exceptions. Each carries the source file:line where it was raised; the Cython bridge turns
// InputError into ValueError, NotSupported into NotImplementedError and Error into RuntimeError.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace dsstne {

// Bad user input: sizes, indices, values.
class InputError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A valid request this build or target cannot execute.
class NotSupported : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// Failure of the machine or a library (CUDA, cuBLAS, allocation).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class E, class... Args>
[[noreturn]] void raise(const char* file, int line, const Args&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  s << " [" << file << ":" << line << "]";
  throw E(s.str());
}
}  // namespace detail

}  // namespace dsstne

#define DSSTNE_RAISE(E, ...) ::dsstne::detail::raise<E>(__FILE__, __LINE__, __VA_ARGS__)
#define DSSTNE_REQUIRE(cond, ...) \
  do {                            \
    if (!(cond)) DSSTNE_RAISE(::dsstne::InputError, __VA_ARGS__); \
  } while (0)
