#pragma once
// Error handling for the data path: results, never exceptions across threads.

#include <string>
#include <utility>
#include <variant>

namespace sluice {

/// The outcome of an operation that returns nothing: ok, or an error message a person can act on.
class status {
public:
    status() = default;
    static status success() { return status{}; }
    static status failure(std::string message) {
        status s;
        s.failed_ = true;
        s.message_ = std::move(message);
        return s;
    }
    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const std::string& message() const { return message_; }

private:
    bool failed_ = false;
    std::string message_;
};

/// A value or an error message (a small std::expected for C++20).
template <class T>
class result {
public:
    result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
    static result failure(std::string message) { return result(std::in_place_index<1>, std::move(message)); }

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const std::string& message() const { return std::get<1>(v_); }

private:
    template <std::size_t I, class A>
    result(std::in_place_index_t<I> i, A&& a) : v_(i, std::forward<A>(a)) {}
    std::variant<T, std::string> v_;
};

}  // namespace sluice
