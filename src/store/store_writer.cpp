#include "sluice/store/store_writer.hpp"

#include <spdlog/spdlog.h>

#include <map>
#include <unordered_map>

namespace sluice {

namespace {
constexpr std::chrono::milliseconds idle_wait{100};
constexpr std::chrono::milliseconds first_backoff{100};
constexpr std::chrono::milliseconds max_backoff{5000};
constexpr std::chrono::milliseconds health_check_interval{2000};
}  // namespace

store_writer::store_writer(const config& cfg, std::vector<channel<processed>*> inputs, wakeup& readable,
                           durable_store* durable, latest_cache* cache, memory_index& memory, offset_sink* offsets)
    : cfg_(cfg),
      inputs_(std::move(inputs)),
      readable_(readable),
      durable_(durable),
      cache_(cache),
      memory_(memory),
      offsets_(offsets) {}

store_writer::~store_writer() {
    static const std::atomic<bool> stop_now{true};
    if (thread_.joinable()) drain_and_join(stop_now);
}

void store_writer::start() { thread_ = std::thread([this] { run(); }); }

void store_writer::drain_and_join(const std::atomic<bool>& abort) {
    abort_.store(&abort);
    draining_.store(true);
    readable_.notify();
    if (thread_.joinable()) thread_.join();
}

bool store_writer::aborted() const {
    const auto* a = abort_.load();
    return a && a->load();
}

std::string store_writer::last_error() const {
    std::lock_guard lock(error_mutex_);
    return last_error_;
}

void store_writer::run() {
    auto log = spdlog::get("store");
    if (!log) log = spdlog::default_logger();
    const auto max_records = static_cast<std::size_t>(cfg_.pipeline.batch_max_records);
    const auto linger = std::chrono::milliseconds(cfg_.pipeline.batch_linger_ms);
    using clock = std::chrono::steady_clock;

    write_batch batch;
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> next_offsets;
    clock::time_point first_at{};
    auto last_health_check = clock::now();
    processed item;

    auto take = [&](processed& p) {
        const record_source* src = nullptr;
        if (auto* r = std::get_if<record>(&p)) {
            src = &r->source;
        } else {
            src = &std::get<dead_letter>(p).source;
        }
        if (src->from_kafka()) {
            auto& next = next_offsets[{src->topic, src->partition}];
            next = std::max(next, src->offset + 1);
        }
        if (auto* r = std::get_if<record>(&p))
            batch.records.push_back(std::move(*r));
        else
            batch.dead_letters.push_back(std::move(std::get<dead_letter>(p)));
    };

    while (!aborted()) {
        const auto seen = readable_.epoch();
        std::size_t pulled = 0;
        for (auto* in : inputs_) {
            std::size_t n = 0;
            while (batch.records.size() + batch.dead_letters.size() < max_records && in->queue.try_pop(item)) {
                if (batch.empty() && n == 0 && pulled == 0) first_at = clock::now();
                take(item);
                ++n;
            }
            if (n) in->writable.notify();
            pulled += n;
        }
        const std::size_t size = batch.records.size() + batch.dead_letters.size();
        const bool full = size >= max_records;
        const bool lingered = size > 0 && clock::now() - first_at >= linger;
        const bool draining = draining_.load();
        if (size > 0 && (full || lingered || (draining && pulled == 0))) {
            for (auto& [tp, next] : next_offsets) batch.offsets.push_back({tp.first, tp.second, next});
            flush(batch);
            batch = write_batch{};
            next_offsets.clear();
            continue;
        }
        if (pulled > 0) continue;
        if (draining && size == 0) {
            bool empty = true;
            for (auto* in : inputs_) empty = empty && in->queue.size() == 0;
            if (empty) break;
            continue;
        }
        // Idle: keep an eye on store health so /readyz tells the truth between batches.
        if (clock::now() - last_health_check >= health_check_interval) {
            last_health_check = clock::now();
            if (durable_ && !durable_->healthy()) (void)durable_->ping();
            if (cache_ && !cache_->healthy()) (void)cache_->ping();
        }
        auto wait = idle_wait;
        if (size > 0) {
            wait = std::chrono::duration_cast<std::chrono::milliseconds>(linger - (clock::now() - first_at));
            if (wait.count() < 1) wait = std::chrono::milliseconds(1);
        }
        readable_.wait_for_change(seen, wait);
    }
    if (!batch.empty()) log->warn("shutdown timed out: {} records not written; they will be consumed again on restart",
                                  batch.records.size() + batch.dead_letters.size());
}

void store_writer::flush(write_batch& batch) {
    auto log = spdlog::get("store");
    if (!log) log = spdlog::default_logger();
    if (durable_) {
        auto backoff = first_backoff;
        bool failing = false;
        while (true) {
            auto s = durable_->write(batch);
            if (s.ok()) {
                if (failing) log->info("PostgreSQL writes recovered");
                std::lock_guard lock(error_mutex_);
                last_error_.clear();
                break;
            }
            if (!failing) log->error("PostgreSQL write failed, retrying with backoff: {}", s.message());
            failing = true;
            {
                std::lock_guard lock(error_mutex_);
                last_error_ = s.message();
            }
            if (aborted()) {
                log->warn("shutdown timed out while PostgreSQL is failing: {} records not written; they will be "
                          "consumed again on restart",
                          batch.records.size() + batch.dead_letters.size());
                return;
            }
            // Sleep in small steps so an abort is noticed quickly.
            const auto until = std::chrono::steady_clock::now() + backoff;
            while (std::chrono::steady_clock::now() < until && !aborted())
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            backoff = std::min(backoff * 2, max_backoff);
        }
    } else {
        for (const auto& d : batch.dead_letters)
            log->warn("dead letter (no PostgreSQL configured) {}[{}]@{}: {}", d.source.topic, d.source.partition,
                      d.source.offset, d.error);
    }

    // The newest record of each key in the batch goes to Redis and memory.
    std::unordered_map<std::string, std::size_t> slot;  // (set, key) -> index in order
    std::vector<record*> order;
    for (auto& r : batch.records) {
        auto [it, inserted] = slot.try_emplace(std::to_string(r.set_index) + '\x1f' + r.key, order.size());
        if (inserted)
            order.push_back(&r);
        else if (order[it->second]->event_time_ms <= r.event_time_ms)
            order[it->second] = &r;
    }
    if (cache_) {
        std::vector<const record*> cache_records(order.begin(), order.end());
        if (auto s = cache_->apply(cache_records); !s)
            log->warn("Redis update failed ({} keys); reads fall back to memory and PostgreSQL: {}", order.size(),
                      s.message());
    }
    for (record* r : order) {
        auto e = std::make_shared<latest_entry>();
        e->key = r->key;
        e->event_time_ms = r->event_time_ms;
        e->ingested_at_ms = r->ingested_at_ms;
        e->values = std::move(r->values);
        memory_.upsert(r->set_index, std::move(e));
    }
    records_.fetch_add(batch.records.size(), std::memory_order_relaxed);
    dead_letters_.fetch_add(batch.dead_letters.size(), std::memory_order_relaxed);
    if (offsets_ && !batch.offsets.empty()) offsets_->offsets_durable(batch.offsets);
}

}  // namespace sluice
