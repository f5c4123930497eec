#pragma once
// Error handling for the data path: typed results, never exceptions across threads.

#include <string>
#include <utility>
#include <variant>

namespace sluice {

/// What kind of failure an error is: it decides what the caller does next.
enum class error_kind : unsigned char {
    retryable,  // a store or broker that is away, a timeout, a lost connection: trying again can help
    permanent,  // the same call fails the same way again (refused SQL, a missing topic): retrying cannot help
    bad_record,  // the input is invalid: it becomes a dead letter
    late_event,  // older than the key's newest event by more than the allowed lateness: a dead letter
    not_owned,   // the Kafka partition belongs to another instance now
};

/// "retryable", "permanent", "bad record", "late event", "not owned".
const char* to_string(error_kind k);

/// The outcome of an operation that returns nothing: ok, or an error message a person can act on
/// and its kind.
class [[nodiscard]] status {
public:
    status() = default;
    static status success() { return status{}; }
    static status failure(std::string message, error_kind kind = error_kind::retryable) {
        status s;
        s.failed_ = true;
        s.kind_ = kind;
        s.message_ = std::move(message);
        return s;
    }
    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const std::string& message() const { return message_; }
    /// The failure's kind (meaningless when ok()).
    error_kind kind() const { return kind_; }
    /// True for a failure that trying again can help.
    bool retryable() const { return failed_ && kind_ == error_kind::retryable; }

private:
    bool failed_ = false;
    error_kind kind_ = error_kind::retryable;
    std::string message_;
};

/// A value or an error (a small std::expected for C++20).
template <class T>
class [[nodiscard]] result {
public:
    result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
    static result failure(std::string message, error_kind kind = error_kind::retryable) {
        return result(std::in_place_index<1>, error{kind, std::move(message)});
    }
    /// The failure of another result or status, carried on with its kind.
    static result failure(const status& s) { return failure(s.message(), s.kind()); }

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const std::string& message() const { return std::get<1>(v_).message; }
    error_kind kind() const { return std::get<1>(v_).kind; }
    bool retryable() const { return !ok() && kind() == error_kind::retryable; }
    /// The failure as a status (ok when this holds a value).
    status as_status() const { return ok() ? status::success() : status::failure(message(), kind()); }

private:
    struct error {
        error_kind kind;
        std::string message;
    };
    template <std::size_t I, class A>
    result(std::in_place_index_t<I> i, A&& a) : v_(i, std::forward<A>(a)) {}
    std::variant<T, error> v_;
};

}  // namespace sluice
