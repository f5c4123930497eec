#pragma once
// How the store writer tries again: backoff for a failure that may pass, a choice for one that
// will not, and the shutdown deadline that ends both.

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "sluice/core/result.hpp"

namespace sluice::writer {

/// What retrier::run() does with a failure that is not retryable.
enum class on_permanent {
    give_up,  // return it: the caller has a way around it
    hold,     // try again every max backoff while it is reported: dropping the work would lose data
};

/// Runs an operation of the store writer until it succeeds, keeps the last failure for the
/// status page, and knows the shutdown deadline (abort). Owned by store_writer; run() on the
/// writer thread (for the batch writer and the aggregation gate), the rest on any thread.
class retrier {
public:
    /// Runs op until it succeeds: a retryable failure again with backoff (0.1 s doubling to
    /// 5 s), a permanent one per `policy`. Fails with a retryable status when the shutdown
    /// deadline passed first, or with the permanent failure given up. Counts each failure in
    /// errors (may be null).
    status run(const char* what, std::atomic<std::uint64_t>* errors, const std::function<status()>& op,
               on_permanent policy);

    /// From now on the writer stops as soon as abort is set (it outlives the writer's threads).
    void set_abort(const std::atomic<bool>& abort) { abort_.store(&abort); }
    /// True once the shutdown deadline passed.
    bool aborted() const {
        const auto* a = abort_.load();
        return a && a->load();
    }
    /// Empty while the last operation succeeded; otherwise why it failed.
    std::string last_error() const;

private:
    std::atomic<const std::atomic<bool>*> abort_{nullptr};
    mutable std::mutex error_mutex_;
    std::string last_error_;
};

}  // namespace sluice::writer
