#pragma once
// Bounded polling for integration tests: every wait in these tests has a deadline, so a
// daemon that never gets there fails the test instead of hanging it.

#include <chrono>
#include <thread>

namespace sluice::it {

/// Calls `pred` every `interval` until it returns true (→ true) or `timeout` has passed
/// (→ false; `pred` is evaluated one last time at the deadline). Runs on the caller's thread.
template <class Pred>
bool wait_until(std::chrono::steady_clock::duration timeout, Pred&& pred,
                std::chrono::milliseconds interval = std::chrono::milliseconds(100)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(interval);
    }
}

/// Seconds elapsed since `start`, for the figures the tests print.
inline double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace sluice::it
