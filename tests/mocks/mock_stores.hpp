#pragma once
// Test doubles of the store-side interfaces: a durable store that records batches and can be made
// to fail, a cache, an offset sink and a dead-letter publisher that record what they were given.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "sluice/core/ports/offsets.hpp"
#include "sluice/core/ports/durable_store.hpp"
#include "sluice/core/ports/latest_cache.hpp"

namespace sluice::mocks {

/// Every call is appended to one shared journal, so a test can check the order of events.
struct journal {
    std::mutex mutex;
    std::vector<std::string> events;
    void add(std::string e) {
        std::lock_guard lock(mutex);
        events.push_back(std::move(e));
    }
    std::vector<std::string> snapshot() {
        std::lock_guard lock(mutex);
        return events;
    }
};

class fake_durable_store final : public durable_store {
public:
    explicit fake_durable_store(journal& j) : journal_(j) {}
    std::atomic<int> failures_left{0};
    std::mutex mutex;
    std::vector<write_batch> committed;

    status prepare() override { return status::success(); }
    /// consumer_offsets as PostgreSQL's fences it: a batch commits only when each of its offsets'
    /// expected is what is stored (or none is stored, for no_stored_offset); unfenced ones only
    /// move forward.
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> stored_offsets;

    status write(const write_batch& batch) override {
        if (failures_left.load() > 0) {
            failures_left.fetch_sub(1);
            journal_.add("pg:fail");
            return status::failure("connection refused");
        }
        std::lock_guard lock(mutex);
        for (const auto& o : batch.offsets) {
            if (o.expected == partition_offset::unfenced) continue;
            const auto it = stored_offsets.find({o.topic, o.partition});
            const std::int64_t stored = it == stored_offsets.end() ? partition_offset::no_stored_offset : it->second;
            if (stored != o.expected) {
                journal_.add("pg:fenced");
                return status::failure("fenced", error_kind::not_owned);
            }
        }
        for (const auto& o : batch.offsets) {
            auto& stored = stored_offsets.try_emplace({o.topic, o.partition}, o.next_offset).first->second;
            stored = o.expected == partition_offset::unfenced ? std::max(stored, o.next_offset) : o.next_offset;
        }
        committed.push_back(batch);
        journal_.add("pg:commit");
        return status::success();
    }
    result<std::optional<latest_entry>> read_latest(std::uint32_t, const std::string&) override {
        return std::optional<latest_entry>{};
    }
    result<std::vector<latest_entry>> scan_latest(std::uint32_t, std::int64_t, const std::string&, std::size_t) override {
        return std::vector<latest_entry>{};
    }
    result<std::int64_t> last_update_ms() override { return std::int64_t{0}; }
    result<history_slice> read_as_of(std::uint32_t, const std::string&, std::int64_t, std::int64_t) override {
        return history_slice{};
    }
    status for_each_history(std::uint32_t, const history_scan&, const history_visitor&) override {
        return status::success();
    }
    result<std::vector<partition_offset>> read_offsets(const std::string&) override {
        std::lock_guard lock(mutex);
        std::vector<partition_offset> out;
        for (const auto& [tp, next] : stored_offsets) out.push_back({tp.first, tp.second, next});
        return out;
    }
    bool healthy() const override { return failures_left.load() == 0; }
    status ping() override { return status::success(); }

private:
    journal& journal_;
};

/// Two write lanes over a fake_durable_store: each batch's rows take a moment (with the other
/// lane's batch in flight meanwhile), then it waits for its turn and commits as the inner store does.
class fake_lanes_store final : public durable_store {
public:
    explicit fake_lanes_store(fake_durable_store& inner) : inner_(inner) {}
    std::atomic<int> at_once{0}, most_at_once{0};

    std::size_t write_lanes() const override { return 2; }
    status write_in_lane(const write_batch& batch, std::size_t, const write_order& order) override {
        const int now = ++at_once;
        for (int most = most_at_once.load(); now > most && !most_at_once.compare_exchange_weak(most, now);) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // the rows, copied
        status s = status::failure("given up waiting for the turn");
        if (order.turn()) {
            s = inner_.write(batch);
            if (s) order.passed();
        }
        --at_once;
        return s;
    }
    status prepare() override { return inner_.prepare(); }
    status write(const write_batch& batch) override { return inner_.write(batch); }
    result<std::optional<latest_entry>> read_latest(std::uint32_t set, const std::string& key) override {
        return inner_.read_latest(set, key);
    }
    result<std::vector<latest_entry>> scan_latest(std::uint32_t set, std::int64_t since, const std::string& after,
                                                  std::size_t limit) override {
        return inner_.scan_latest(set, since, after, limit);
    }
    result<std::int64_t> last_update_ms() override { return inner_.last_update_ms(); }
    result<history_slice> read_as_of(std::uint32_t set, const std::string& key, std::int64_t at, std::int64_t span) override {
        return inner_.read_as_of(set, key, at, span);
    }
    status for_each_history(std::uint32_t set, const history_scan& scan, const history_visitor& fn) override {
        return inner_.for_each_history(set, scan, fn);
    }
    result<std::vector<partition_offset>> read_offsets(const std::string& group) override {
        return inner_.read_offsets(group);
    }
    bool healthy() const override { return inner_.healthy(); }
    status ping() override { return inner_.ping(); }

private:
    fake_durable_store& inner_;
};

class fake_cache final : public latest_cache {
public:
    explicit fake_cache(journal& j) : journal_(j) {}
    std::mutex mutex;
    std::vector<std::pair<std::string, std::int64_t>> applied;  // key, event time

    status apply(const std::vector<const record*>& records) override {
        std::lock_guard lock(mutex);
        for (const auto* r : records) applied.emplace_back(r->key, r->event_time_ms);
        journal_.add("redis:apply");
        return status::success();
    }
    result<std::optional<latest_entry>> read_latest(std::uint32_t, const std::string&) override {
        return std::optional<latest_entry>{};
    }
    bool healthy() const override { return true; }
    status ping() override { return status::success(); }

private:
    journal& journal_;
};

class fake_offsets final : public offset_sink {
public:
    explicit fake_offsets(journal& j) : journal_(j) {}
    std::mutex mutex;
    std::vector<partition_offset> stored;

    void offsets_durable(const std::vector<partition_offset>& offsets) override {
        std::lock_guard lock(mutex);
        stored.insert(stored.end(), offsets.begin(), offsets.end());
        journal_.add("kafka:offsets");
    }
    bool owns(const std::string&, std::int32_t partition) const override {
        std::lock_guard lock(given_up_mutex);
        return given_up.count(partition) == 0;
    }
    std::unique_lock<std::mutex> hold_assignment() override { return std::unique_lock(assignment_mutex); }
    std::mutex assignment_mutex;
    /// Partitions this instance no longer owns (revoked in a rebalance).
    mutable std::mutex given_up_mutex;
    std::set<std::int32_t> given_up;

private:
    journal& journal_;
};

class fake_dead_letter_topic final : public dead_letter_publisher {
public:
    explicit fake_dead_letter_topic(journal& j) : journal_(j) {}
    std::atomic<int> failures_left{0};
    std::atomic<std::size_t> published{0};

    status publish(const std::vector<dead_letter>& letters) override {
        if (failures_left.load() > 0) {
            failures_left.fetch_sub(1);
            journal_.add("dlq:fail");
            return status::failure("broker down");
        }
        published += letters.size();
        journal_.add("dlq:publish");
        return status::success();
    }

private:
    journal& journal_;
};

}  // namespace sluice::mocks
