#include "cache_publisher.hpp"

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>
#include <unordered_map>

#include "sluice/core/clock.hpp"
#include "sluice/core/log.hpp"

namespace sluice::writer {

namespace {
constexpr std::chrono::milliseconds idle_wait{100};
constexpr std::chrono::milliseconds health_check_interval{2000};
// Durable batches that may wait for the cache thread before the writer waits for it: when Redis
// is slower than PostgreSQL they are written to it together, each key once.
constexpr std::size_t max_waiting_batches = 8;
}  // namespace

cache_publisher::cache_publisher(const config& cfg, durable_store* durable, latest_cache* cache, memory_index& memory,
                                 offset_sink* offsets)
    : cfg_(cfg), durable_(durable), cache_(cache), memory_(memory), offsets_(offsets) {}

cache_publisher::~cache_publisher() {
    close();
    join();
}

void cache_publisher::start() {
    // A crash can fall between a PostgreSQL commit and the Redis update that follows it, and those
    // messages are not consumed again: bring Redis up to date with what changed last before start.
    if (cache_ && durable_) {
        auto last = durable_->last_update_ms();
        if (last && last.value() > 0) cache_stale_since_ms_ = last.value() - 60000;
    }
    thread_ = std::thread([this] { run(); });
}

void cache_publisher::hand_off(durable_batch done) {
    std::unique_lock lock(handoff_mutex_);
    handoff_cv_.wait(lock, [&] { return handoff_.size() < max_waiting_batches; });
    handoff_.push_back(std::move(done));
    lock.unlock();
    handoff_cv_.notify_all();
}

void cache_publisher::close() {
    {
        std::lock_guard lock(handoff_mutex_);
        handoff_closed_ = true;
    }
    handoff_cv_.notify_all();
}

void cache_publisher::join() {
    if (thread_.joinable()) thread_.join();
}

void cache_publisher::run() {
    using clock = std::chrono::steady_clock;
    auto last_health_check = clock::now();
    while (true) {
        std::deque<durable_batch> next;
        {
            std::unique_lock lock(handoff_mutex_);
            handoff_cv_.wait_for(lock, idle_wait, [&] { return !handoff_.empty() || handoff_closed_; });
            if (!handoff_.empty()) {
                next.swap(handoff_);
            } else if (handoff_closed_) {
                break;
            }
        }
        if (cache_stale_since_ms_) resync_cache();  // at most once a second
        if (!next.empty()) {
            handoff_cv_.notify_all();  // room for the writer's next batches
            publish(next);
            continue;
        }
        // Idle: keep an eye on Redis so /readyz tells the truth between batches.
        if (cache_ && clock::now() - last_health_check >= health_check_interval) {
            last_health_check = clock::now();
            if (!cache_->healthy()) (void)cache_->ping();
        }
    }
}

void cache_publisher::publish(std::deque<durable_batch>& batches) {
    const auto& log = module_logger(log_module::store);
    if (cache_ && !cache_stale_since_ms_) {
        // One Redis update for every batch waiting: a key in several of them is written once,
        // with its newest record (the first delivered among equal event times, as in each batch).
        const std::vector<const record*>* order = &batches.front().newest;
        std::vector<const record*> merged;
        if (batches.size() > 1) {
            // Per feature set: key → index in merged (the keys are the records', which outlive this).
            std::vector<std::unordered_map<std::string_view, std::size_t>> slot(cfg_.feature_sets.size());
            std::size_t total = 0;
            for (const auto& b : batches) total += b.newest.size();
            merged.reserve(total);
            for (const auto& b : batches) {
                for (const record* r : b.newest) {
                    const auto [it, added] = slot[r->set_index].try_emplace(r->key, merged.size());
                    if (added)
                        merged.push_back(r);
                    else if (r->event_time_ms > merged[it->second]->event_time_ms)
                        merged[it->second] = r;
                }
            }
            order = &merged;
        }
        if (auto s = cache_->apply(*order); !s) {
            log->warn("Redis update failed ({} keys); reads fall back to memory and PostgreSQL, and Redis is "
                      "brought up to date when it answers again: {}",
                      order->size(), s.message());
            cache_stale_since_ms_ = now_ms() - 60000;
            if (stats_) stats_->redis_errors.fetch_add(1, std::memory_order_relaxed);
        } else if (stats_) {
            for (const auto& b : batches) stats_->trace_reached(trace_stage::redis, b.batch.records);
        }
    }
    for (auto& done : batches) {
        if (offsets_ && !done.batch.offsets.empty()) offsets_->offsets_durable(done.batch.offsets);
        answer_pushes(done.pushes, done.batch, true);
    }
}

void cache_publisher::resync_cache() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_cache_probe_ < std::chrono::seconds(1)) return;
    last_cache_probe_ = now;
    if (!cache_->ping().ok()) return;
    const auto& log = module_logger(log_module::store);
    const auto started = std::chrono::steady_clock::now();
    std::size_t keys = 0;
    // Turns latest rows into records the cache writes with its event-time guard.
    auto write_back = [&](std::uint32_t set_index, const std::vector<latest_entry>& rows) {
        std::vector<record> records(rows.size());
        std::vector<const record*> ptrs;
        for (std::size_t i = 0; i < rows.size(); ++i) {
            records[i].set_index = set_index;
            records[i].key = rows[i].key;
            records[i].event_time_ms = rows[i].event_time_ms;
            records[i].ingested_at_ms = rows[i].ingested_at_ms;
            records[i].values = rows[i].values;
            ptrs.push_back(&records[i]);
        }
        keys += rows.size();
        return cache_->apply(ptrs);
    };
    for (std::uint32_t set = 0; set < cfg_.feature_sets.size(); ++set) {
        if (durable_) {
            std::string after;
            while (true) {
                auto page = durable_->scan_latest(set, *cache_stale_since_ms_, after, 1000);
                if (!page) {
                    log->warn("Redis resync: reading PostgreSQL failed, will retry: {}", page.message());
                    return;
                }
                if (page->empty()) break;
                if (auto s = write_back(set, page.value()); !s) {
                    log->warn("Redis resync failed, will retry: {}", s.message());
                    return;
                }
                after = page->back().key;
            }
        } else {
            // Without PostgreSQL the memory index is the record of what Redis should hold.
            std::vector<latest_entry> rows;
            memory_.for_each(set, [&](const latest_entry& e) { rows.push_back(e); });
            if (auto s = write_back(set, rows); !s) {
                log->warn("Redis resync failed, will retry: {}", s.message());
                return;
            }
        }
    }
    cache_stale_since_ms_.reset();
    log->info("Redis brought up to date from PostgreSQL: {} keys in {} ms", keys,
              std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
}

}  // namespace sluice::writer
