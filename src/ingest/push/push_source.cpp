#include "sluice/ingest/push_source.hpp"

#include <algorithm>
#include <atomic>

#include "sluice/core/clock.hpp"

namespace sluice {

// One push in flight: answered exactly once, by the writer or by the deadline.
struct push_source::pending {
    std::atomic<bool> answered{false};
    push_callback done;
    std::chrono::steady_clock::time_point deadline;

    void answer(result<push_outcome> r) {
        if (answered.exchange(true)) return;
        done(std::move(r));
    }
};

push_source::push_source(const config& cfg, push_validator& validator, push_writer& writer, lookup_pool& pool)
    : cfg_(cfg), validator_(validator), writer_(writer), pool_(pool) {
    watcher_ = std::thread([this] { watch(); });
}

push_source::~push_source() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cv_.notify_all();
    watcher_.join();
}

void push_source::watch() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        cv_.wait_for(lock, std::chrono::milliseconds(100));
        const auto now = std::chrono::steady_clock::now();
        std::vector<std::shared_ptr<pending>> expired;
        std::erase_if(waiting_, [&](const std::shared_ptr<pending>& p) {
            if (p->answered.load()) return true;
            if (p->deadline > now) return false;
            expired.push_back(p);
            return true;
        });
        lock.unlock();
        for (auto& p : expired)
            p->answer(result<push_outcome>::failure(
                "the records were not durable within http.ingest_timeout_ms (" +
                std::to_string(cfg_.http.ingest_timeout_ms) +
                " ms); they may still be written. Is PostgreSQL reachable? See /readyz"));
        lock.lock();
    }
}

void push_source::push(std::uint32_t set_index, std::vector<std::string> payloads, push_callback done) {
    std::vector<record_source> sources;
    for (std::size_t i = 0; i < payloads.size(); ++i) sources.push_back(record_source::pushed(static_cast<std::int64_t>(i)));
    submit(set_index, std::move(payloads), std::move(sources), std::move(done));
}

void push_source::release(std::uint32_t set_index, std::vector<std::pair<std::int64_t, std::string>> rows,
                          push_callback done) {
    std::vector<std::string> payloads;
    std::vector<record_source> sources;
    for (auto& [id, payload] : rows) {
        sources.push_back(record_source{std::string(quarantine_topic) + std::to_string(id), -1, id});
        payloads.push_back(std::move(payload));
    }
    submit(set_index, std::move(payloads), std::move(sources), std::move(done));
}

void push_source::submit(std::uint32_t set_index, std::vector<std::string> payloads, std::vector<record_source> sources,
                         push_callback done) {
    auto p = std::make_shared<pending>();
    p->done = std::move(done);
    p->deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(cfg_.http.ingest_timeout_ms);
    {
        std::lock_guard lock(mutex_);
        waiting_.push_back(p);
    }
    auto task = [this, set_index, payloads = std::move(payloads), sources = std::move(sources), p]() mutable {
        const auto now = now_ms();
        std::vector<processed> items;
        items.reserve(payloads.size());
        auto outcome = std::make_shared<push_outcome>();
        for (std::size_t i = 0; i < payloads.size(); ++i) {
            raw_message msg;
            msg.set_index = set_index;
            msg.source = std::move(sources[i]);
            msg.kafka_timestamp_ms = now;  // the time of arrival stands in for a Kafka timestamp
            msg.payload = std::move(payloads[i]);
            processed item = validator_.validate(std::move(msg), now);
            if (auto* d = std::get_if<dead_letter>(&item))
                outcome->errors.emplace_back(i, d->error);
            else if (std::holds_alternative<skipped>(item))
                ++outcome->skipped;
            items.push_back(std::move(item));
        }
        const std::size_t total = items.size();
        const bool queued = writer_.push(
            std::move(items), [p, outcome, total](bool durable, std::vector<std::pair<std::size_t, std::string>> late) {
                if (!durable) {
                    p->answer(result<push_outcome>::failure("the daemon stopped before the records were durable"));
                    return;
                }
                for (auto& l : late) outcome->errors.push_back(std::move(l));
                std::sort(outcome->errors.begin(), outcome->errors.end());
                outcome->accepted = total - outcome->errors.size();
                p->answer(std::move(*outcome));
            });
        if (!queued) p->answer(result<push_outcome>::failure("the write queue is full or stopping; try again shortly"));
    };
    if (!pool_.submit(std::move(task)))
        p->answer(result<push_outcome>::failure("lookup backlog is full; try again shortly"));
}

}  // namespace sluice
