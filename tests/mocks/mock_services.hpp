#pragma once
// Test doubles of the serve interfaces (include/sluice/serve/services.hpp).

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sluice/serve/services.hpp"

namespace sluice::testing {

/// A feature_reader backed by a map. Answers inline by default; with answer_from_thread it
/// answers from a thread of its own after `delay`, as the real reader does for Redis or
/// PostgreSQL lookups. Threads are joined in the destructor.
class fake_feature_reader final : public feature_reader {
public:
    ~fake_feature_reader() override {
        std::vector<std::thread> threads;
        {
            std::lock_guard lock(mutex_);
            threads.swap(threads_);
        }
        for (auto& t : threads) t.join();
    }

    void put(std::uint32_t set_index, latest_entry e) {
        std::lock_guard lock(mutex_);
        std::string key = e.key;
        entries_[{set_index, key}] = std::move(e);
    }
    /// Every lookup fails with this message (empty: lookups succeed again).
    void fail_with(std::string message) {
        std::lock_guard lock(mutex_);
        error_ = std::move(message);
    }
    void answer_from_thread(std::chrono::milliseconds delay) {
        std::lock_guard lock(mutex_);
        async_ = true;
        delay_ = delay;
    }
    /// get_latest throws instead of answering (a misbehaving store client).
    void throw_on_call(bool on) { throw_ = on; }
    int calls() const { return calls_.load(); }
    std::vector<std::string> keys_asked() const {
        std::lock_guard lock(mutex_);
        return keys_asked_;
    }

    /// Answers like get_latest, remembering the moment asked for.
    void get_as_of(std::uint32_t set_index, std::string key, std::int64_t at_ms, latest_callback done) override {
        last_as_of_.store(at_ms);
        get_latest(set_index, std::move(key), std::move(done));
    }
    std::int64_t last_as_of() const { return last_as_of_.load(); }

    void get_latest(std::uint32_t set_index, std::string key, latest_callback done) override {
        ++calls_;
        if (throw_) throw std::runtime_error("fake reader failure");
        std::unique_lock lock(mutex_);
        keys_asked_.push_back(key);
        result<std::optional<latest_entry>> answer = std::optional<latest_entry>{};
        if (!error_.empty()) {
            answer = result<std::optional<latest_entry>>::failure(error_);
        } else if (auto it = entries_.find({set_index, key}); it != entries_.end()) {
            answer = std::optional<latest_entry>{it->second};
        }
        if (!async_) {
            lock.unlock();
            done(std::move(answer));
            return;
        }
        threads_.emplace_back([delay = delay_, answer = std::move(answer), done = std::move(done)]() mutable {
            std::this_thread::sleep_for(delay);
            done(std::move(answer));
        });
    }

private:
    std::atomic<std::int64_t> last_as_of_{-1};
    mutable std::mutex mutex_;
    std::map<std::pair<std::uint32_t, std::string>, latest_entry> entries_;
    std::string error_;
    bool async_ = false;
    std::chrono::milliseconds delay_{0};
    std::vector<std::thread> threads_;
    std::vector<std::string> keys_asked_;
    std::atomic<int> calls_{0};
    std::atomic<bool> throw_{false};
};

/// A health_source whose reasons the test sets.
class fake_health_source final : public health_source {
public:
    void set_reasons(std::vector<std::string> reasons) {
        std::lock_guard lock(mutex_);
        reasons_ = std::move(reasons);
    }
    std::vector<std::string> not_ready_reasons() const override {
        std::lock_guard lock(mutex_);
        return reasons_;
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> reasons_;
};

}  // namespace sluice::testing
