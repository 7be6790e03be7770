// GAPO_BOX(fn): the boxed form of a kernel for StableLibrary::impl, like torch's TORCH_BOX,
// except that `str` arguments are unboxed without leaking.
//
// Why not TORCH_BOX: in torch 2.10 - 2.13, ToImpl<std::string>::call (stable/
// stableivalue_conversions.h) copies the argument into `new std::string(...)` and returns
// `*strptr`, a copy: the heap std::string object itself is never deleted. That is one
// 32-byte object (a 48-byte malloc chunk) per `str` argument per call, on success and on
// error alike (arguments are unboxed before the kernel runs): 96 bytes per call of an op
// with two strings, which a trainer calling the op every step turns into gigabytes.
//
// Here a `str` argument is read straight from its StringHandle into a std::string value and
// the handle is deleted, nothing else allocated. Every other argument type goes through
// torch's own conversions. Kernels take `str` arguments as std::string_view (or std::string).
#pragma once

#include <torch/csrc/stable/library.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace gapo::boxing {

// The owning type an argument is unboxed into before the kernel sees it.
template <class T>
struct Unboxed {
  using type = torch::stable::detail::unbox_type_t<T>;
  static type take(StableIValue value) { return torch::stable::detail::to<type>(value); }
};

// A `str` argument: the stack holds an owning StringHandle; copy its bytes, then free it.
inline std::string take_string(StableIValue value) {
  StringHandle handle = torch::stable::detail::to<StringHandle>(value);
  size_t length = 0;
  const char* data = nullptr;
  const bool ok = torch_string_length(handle, &length) == AOTI_TORCH_SUCCESS &&
                  torch_string_c_str(handle, &data) == AOTI_TORCH_SUCCESS;
  std::string text = ok ? std::string(data, length) : std::string();
  torch_delete_string(handle);
  STD_TORCH_CHECK(ok, "gapo: could not read a string argument");
  return text;
}

template <>
struct Unboxed<std::string_view> {
  using type = std::string;
  static type take(StableIValue value) { return take_string(value); }
};

template <>
struct Unboxed<std::string> {
  using type = std::string;
  static type take(StableIValue value) { return take_string(value); }
};

template <class T>
using Plain = std::remove_cv_t<std::remove_reference_t<T>>;

template <class Function, Function* function>
struct Boxer;

template <class Result, class... Args, Result (*function)(Args...)>
struct Boxer<Result(Args...), function> {
  template <std::size_t... I>
  static std::tuple<typename Unboxed<Plain<Args>>::type...> unbox(StableIValue* stack, std::index_sequence<I...>) {
    // Braced initialisation: the arguments are taken (and their handles freed) left to right.
    return std::tuple<typename Unboxed<Plain<Args>>::type...>{Unboxed<Plain<Args>>::take(stack[I])...};
  }

  static void boxed(StableIValue* stack, uint64_t num_args, uint64_t num_outputs) {
    STD_TORCH_CHECK(num_args == sizeof...(Args), "gapo: the registered schema has ", num_args,
                    " arguments, the kernel ", sizeof...(Args));
    auto args = unbox(stack, std::index_sequence_for<Args...>{});
    Result result = std::apply(function, std::move(args));
    box_result(stack, num_outputs, std::move(result));
  }

  template <class... R>
  static void box_result(StableIValue* stack, uint64_t num_outputs, std::tuple<R...> result) {
    STD_TORCH_CHECK(num_outputs == sizeof...(R), "gapo: the registered schema has ", num_outputs,
                    " outputs, the kernel ", sizeof...(R));
    box_each(stack, std::move(result), std::index_sequence_for<R...>{});
  }
  template <class R>
  static void box_result(StableIValue* stack, uint64_t num_outputs, R result) {
    STD_TORCH_CHECK(num_outputs == 1, "gapo: the registered schema has ", num_outputs, " outputs, the kernel 1");
    stack[0] = torch::stable::detail::from(std::move(result));
  }
  template <class... R, std::size_t... I>
  static void box_each(StableIValue* stack, std::tuple<R...> result, std::index_sequence<I...>) {
    ((stack[I] = torch::stable::detail::from(std::get<I>(result))), ...);
  }
};

}  // namespace gapo::boxing

#define GAPO_BOX(function) \
  (&::gapo::boxing::Boxer<std::remove_pointer_t<decltype(function)>, (function)>::boxed)
