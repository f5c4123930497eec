#include "retry.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "sluice/core/log.hpp"

namespace sluice::writer {

namespace {
constexpr std::chrono::milliseconds first_backoff{100};
constexpr std::chrono::milliseconds max_backoff{5000};
}  // namespace

status retrier::run(const char* what, std::atomic<std::uint64_t>* errors, const std::function<status()>& op,
                    on_permanent policy) {
    const auto& log = module_logger(log_module::store);
    auto backoff = first_backoff;
    bool failing = false;
    while (true) {
        auto s = op();
        if (s.ok()) {
            if (failing) log->info("{} recovered", what);
            std::lock_guard lock(error_mutex_);
            last_error_.clear();
            return s;
        }
        if (errors) errors->fetch_add(1, std::memory_order_relaxed);
        const bool permanent = !s.retryable();
        if (permanent && policy == on_permanent::give_up) {
            log->error("{} failed ({}), not retried: {}", what, to_string(s.kind()), s.message());
            return s;
        }
        if (!failing && permanent)
            log->error("{} failed ({}); it cannot succeed until an operator fixes the cause, tried again every {} s "
                       "meanwhile: {}",
                       what, to_string(s.kind()), max_backoff.count() / 1000, s.message());
        else if (!failing)
            log->error("{} failed, retrying with backoff: {}", what, s.message());
        failing = true;
        {
            std::lock_guard lock(error_mutex_);
            last_error_ = s.message();
        }
        if (aborted()) return status::failure(std::string(what) + ": the shutdown deadline passed while it failed");
        if (permanent) backoff = max_backoff;
        // Sleep in small steps so an abort is noticed quickly.
        const auto until = std::chrono::steady_clock::now() + backoff;
        while (std::chrono::steady_clock::now() < until && !aborted())
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        backoff = std::min(backoff * 2, max_backoff);
    }
}

std::string retrier::last_error() const {
    std::lock_guard lock(error_mutex_);
    return last_error_;
}

}  // namespace sluice::writer
