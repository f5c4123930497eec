#include "sluice/store/store_writer.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <unordered_map>

#include "sluice/core/clock.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/value_codec.hpp"
#include "sluice/store/newest_of_each_key.hpp"

namespace sluice {

namespace {
constexpr std::chrono::milliseconds idle_wait{100};
constexpr std::chrono::milliseconds first_backoff{100};
constexpr std::chrono::milliseconds max_backoff{5000};
constexpr std::chrono::milliseconds health_check_interval{2000};
}  // namespace

store_writer::store_writer(const config& cfg, std::vector<channel<processed>*> inputs, wakeup& readable,
                           durable_store* durable, latest_cache* cache, memory_index& memory, offset_sink* offsets,
                           dead_letter_publisher* dead_letter_topic)
    : cfg_(cfg),
      inputs_(std::move(inputs)),
      readable_(readable),
      durable_(durable),
      cache_(cache),
      memory_(memory),
      offsets_(offsets),
      dead_letter_topic_(dead_letter_topic) {}

store_writer::~store_writer() {
    static const std::atomic<bool> stop_now{true};
    if (thread_.joinable() || cache_thread_.joinable()) drain_and_join(stop_now);
}

void store_writer::aggregate(write_batch& batch) {
    const auto now = now_ms();
    // Newest new event per (set, key) within this batch, for the lateness rule.
    std::unordered_map<std::string, std::int64_t> batch_newest;
    std::set<std::tuple<std::string, std::int32_t, std::int64_t>> seen;
    std::vector<record> kept;
    kept.reserve(batch.records.size());
    for (auto& r : batch.records) {
        aggregation_state* agg = r.set_index < aggregators_.size() ? aggregators_[r.set_index] : nullptr;
        if (!agg) {
            kept.push_back(std::move(r));
            continue;
        }
        bool replay = false;
        if (r.source.from_kafka()) {
            auto it = committed_next_.find({r.source.topic, r.source.partition});
            replay = (it != committed_next_.end() && r.source.offset < it->second) ||
                     !seen.emplace(r.source.topic, r.source.partition, r.source.offset).second;
        }
        if (!replay) {
            const auto& set = cfg_.feature_sets[r.set_index];
            const std::string id = std::to_string(r.set_index) + '\x1f' + r.key;
            auto newest = batch_newest.find(id);
            const bool late = agg->too_late(r.key, r.event_time_ms) ||
                              (newest != batch_newest.end() && r.event_time_ms < newest->second - set.allowed_lateness_ms);
            if (late) {
                dead_letter d;
                d.set_index = r.set_index;
                d.source = r.source;
                d.received_at_ms = r.ingested_at_ms;
                d.reason = dead_letter_reason::late_event;
                d.error = "late event: event time " + format_rfc3339_ms(r.event_time_ms) +
                          " is more than allowed_lateness (" + std::to_string(set.allowed_lateness_ms / 1000) +
                          " s) older than the newest event of key '" + r.key + "'";
                nlohmann::json payload = {{set.key_field, r.key}, {set.event_time_field, r.event_time_ms}};
                for (std::size_t i = 0; i < set.fields.size() && i < r.values.size(); ++i)
                    payload[set.fields[i].name] = nlohmann::json::parse(
                        value_to_json_text(set.fields[i].type, r.values[i]), nullptr, false);
                d.payload = payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
                batch.dead_letters.push_back(std::move(d));
                continue;
            }
            agg->add(r.key, r.event_time_ms, r.values, r.source.from_kafka() ? r.source.partition : -1);
            auto [slot, inserted] = batch_newest.try_emplace(id, r.event_time_ms);
            if (!inserted) slot->second = std::max(slot->second, r.event_time_ms);
        }
        kept.push_back(std::move(r));
    }
    batch.records = std::move(kept);
    // Every record of a key carries the key's aggregation values now (latest keeps the newest).
    std::unordered_map<std::string, std::vector<value>> values_now;
    for (auto& r : batch.records) {
        aggregation_state* agg = r.set_index < aggregators_.size() ? aggregators_[r.set_index] : nullptr;
        if (!agg) continue;
        const std::string id = std::to_string(r.set_index) + '\x1f' + r.key;
        auto it = values_now.find(id);
        if (it == values_now.end()) it = values_now.emplace(id, agg->values_at(r.key, now)).first;
        r.values.resize(cfg_.feature_sets[r.set_index].fields.size());
        r.values.insert(r.values.end(), it->second.begin(), it->second.end());
    }
}

void store_writer::start() {
    // A crash can fall between a PostgreSQL commit and the Redis update that follows it, and those
    // messages are not consumed again: bring Redis up to date with what changed last before start.
    if (cache_ && durable_) {
        auto last = durable_->last_update_ms();
        if (last && last.value() > 0) cache_stale_since_ms_ = last.value() - 60000;
    }
    // What this group already committed: a record below it is a re-delivery, already aggregated.
    if (durable_) {
        if (auto stored = durable_->read_offsets(cfg_.kafka.group_id))
            for (const auto& o : stored.value()) committed_next_[{o.topic, o.partition}] = o.next_offset;
    }
    cache_thread_ = std::thread([this] { run_cache(); });
    thread_ = std::thread([this] { run(); });
}

bool store_writer::push(std::vector<processed> items, push_done done) {
    {
        std::lock_guard lock(push_mutex_);
        if (push_closed_) return false;
        if (pushed_items_ + items.size() > static_cast<std::size_t>(cfg_.pipeline.queue_capacity) && pushed_items_ > 0)
            return false;
        pending_push p;
        p.first_seq = push_seq_;
        push_seq_ += static_cast<std::int64_t>(items.size());
        for (std::size_t i = 0; i < items.size(); ++i) {
            record_source& src = std::visit([](auto& item) -> record_source& { return item.source; }, items[i]);
            src = record_source::pushed(p.first_seq + static_cast<std::int64_t>(i));
        }
        pushed_items_ += items.size();
        p.count = items.size();
        p.items = std::move(items);
        p.done = std::move(done);
        pushes_.push_back(std::move(p));
    }
    readable_.notify();
    return true;
}

void store_writer::leave_given_up_partitions(write_batch& batch) {
    std::map<std::pair<std::string, std::int32_t>, bool> owned;
    auto owns = [&](const record_source& src) {
        if (!src.from_kafka()) return true;
        auto [it, inserted] = owned.try_emplace({src.topic, src.partition}, false);
        if (inserted) it->second = offsets_->owns(src.topic, src.partition);
        return it->second;
    };
    const std::size_t before = batch.records.size() + batch.dead_letters.size();
    std::erase_if(batch.records, [&](const record& r) { return !owns(r.source); });
    std::erase_if(batch.dead_letters, [&](const dead_letter& d) { return !owns(d.source); });
    std::erase_if(batch.offsets, [&](const partition_offset& o) { return !owns({o.topic, o.partition, 0}); });
    if (const std::size_t left = before - batch.records.size() - batch.dead_letters.size()) {
        const auto& log = module_logger(log_module::store);
        log->info("{} records of partitions given up in a rebalance are left to their new owner", left);
    }
}

void store_writer::partitions_changed(const std::vector<partition_offset>& partitions, bool revoked) {
    if (aggregators_.empty()) return;
    {
        std::lock_guard lock(changes_mutex_);
        for (const auto& p : partitions) {
            changes_.push_back({p, revoked});
            if (revoked)
                catching_up_.erase({p.topic, p.partition});
            else
                catching_up_.insert({p.topic, p.partition});
        }
        any_catching_up_.store(!catching_up_.empty());
    }
    readable_.notify();  // an idle writer catches up at once
}

bool store_writer::catching_up(const std::string& topic, std::int32_t partition) const {
    if (!any_catching_up_.load()) return false;  // the common case, on the read path: no lock
    std::lock_guard lock(changes_mutex_);
    return catching_up_.count({topic, partition}) > 0;
}

void store_writer::apply_partition_changes() {
    std::vector<partition_change> changes;
    {
        std::lock_guard lock(changes_mutex_);
        if (changes_.empty()) return;
        changes.swap(changes_);
    }
    const auto& log = module_logger(log_module::store);
    for (const auto& c : changes) {
        for (std::uint32_t set = 0; set < cfg_.feature_sets.size() && set < aggregators_.size(); ++set) {
            const auto& fs = cfg_.feature_sets[set];
            aggregation_state* agg = aggregators_[set];
            if (!agg || fs.topic != c.where.topic) continue;
            const std::pair<std::string, std::int32_t> tp{c.where.topic, c.where.partition};
            if (c.revoked) {
                // Another instance keeps these keys now; state taken back later is rebuilt whole.
                agg->evict_partitions({c.where.partition});
                committed_next_.erase(tp);
                continue;
            }
            auto it = committed_next_.find(tp);
            const std::int64_t from = it == committed_next_.end() ? 0 : it->second;
            const std::int64_t to = c.where.next_offset;
            if (to <= from) continue;  // nobody wrote this partition since this writer did
            history_scan scan;
            scan.since_ms = now_ms() - fs.aggregation_horizon_ms();
            scan.topic = c.where.topic;
            scan.partition = c.where.partition;
            scan.from_offset = from;
            scan.to_offset = to;
            std::size_t rows = 0;
            bool first_try = true;
            auto catch_up = [&] {
                rows = 0;
                // With no state of its own for the partition (or after a failed try that may have
                // added part of the rows), the partition's state is rebuilt whole.
                if (from == 0 || !first_try) {
                    agg->evict_partitions({c.where.partition});
                    scan.from_offset = 0;
                }
                first_try = false;
                return durable_->for_each_history(
                    set, scan, [&](const std::string& key, std::int64_t t, const std::vector<value>& values, std::int32_t partition) {
                        agg->add(key, t, values, partition);
                        ++rows;
                    });
            };
            // The state must not be served half caught up: a refused read is held like a write.
            const bool ok = durable_ && retry("aggregation catch-up from history",
                                              stats_ ? &stats_->postgres_errors : nullptr, catch_up, on_permanent::hold)
                                            .ok();
            if (!ok) continue;
            committed_next_[tp] = std::max(from, to);
            log->info("{}[{}]: aggregation state caught up from {} history rows (offsets {}..{})", c.where.topic,
                      c.where.partition, rows, scan.from_offset, to);
        }
        if (c.revoked) continue;
        // Served again, unless the partition came back meanwhile and waits for its next catch-up.
        std::lock_guard lock(changes_mutex_);
        const bool again = std::any_of(changes_.begin(), changes_.end(), [&](const partition_change& n) {
            return n.where.topic == c.where.topic && n.where.partition == c.where.partition;
        });
        if (!again) catching_up_.erase({c.where.topic, c.where.partition});
        any_catching_up_.store(!catching_up_.empty());
    }
}

void store_writer::add_to_batch(write_batch& batch, processed& item) {
    if (auto* r = std::get_if<record>(&item)) {
        batch.records.push_back(std::move(*r));
    } else if (auto* d = std::get_if<dead_letter>(&item)) {
        batch.dead_letters.push_back(std::move(*d));
    } else {
        ++batch.skipped;
        if (stats_) stats_->set(std::get<skipped>(item).set_index).skipped.fetch_add(1, std::memory_order_relaxed);
    }
}

std::size_t store_writer::take_pushes(write_batch& batch, std::vector<pending_push>& waiting) {
    std::deque<pending_push> taken;
    {
        std::lock_guard lock(push_mutex_);
        if (pushes_.empty()) return 0;
        taken.swap(pushes_);
        pushed_items_ = 0;
    }
    std::size_t n = 0;
    for (auto& p : taken) {
        for (auto& item : p.items) add_to_batch(batch, item);
        n += p.items.size();
        p.items.clear();
        waiting.push_back(std::move(p));
    }
    return n;
}

void store_writer::answer_pushes(std::vector<pending_push>& waiting, const write_batch& batch, bool durable) {
    for (auto& p : waiting) {
        std::vector<std::pair<std::size_t, std::string>> late;
        if (durable) {
            for (const auto& d : batch.dead_letters) {
                // Late events among this push's records (its own invalid items were answered already).
                if (d.source.origin() != record_origin::push || d.source.offset < p.first_seq ||
                    d.source.offset >= p.first_seq + static_cast<std::int64_t>(p.count))
                    continue;
                const auto index = static_cast<std::size_t>(d.source.offset - p.first_seq);
                if (d.reason == dead_letter_reason::late_event) late.emplace_back(index, d.error);
            }
        }
        try {
            p.done(durable, std::move(late));
        } catch (const std::exception& e) {
            module_logger(log_module::store)->error("push answer failed: {}", e.what());
        }
    }
    waiting.clear();
}

void store_writer::drain_and_join(const std::atomic<bool>& abort) {
    abort_.store(&abort);
    draining_.store(true);
    readable_.notify();
    if (thread_.joinable()) thread_.join();
    {
        // run() closes the hand-off as it ends; also when it never started.
        std::lock_guard lock(handoff_mutex_);
        handoff_closed_ = true;
    }
    handoff_cv_.notify_all();
    if (cache_thread_.joinable()) cache_thread_.join();
}

bool store_writer::aborted() const {
    const auto* a = abort_.load();
    return a && a->load();
}

std::int64_t store_writer::write_waiting_ms() const {
    const auto started = write_started_ms_.load();
    return started ? now_ms() - started : 0;
}

std::string store_writer::last_error() const {
    std::lock_guard lock(error_mutex_);
    return last_error_;
}

void store_writer::run() {
    const auto& log = module_logger(log_module::store);
    const auto max_records = static_cast<std::size_t>(cfg_.pipeline.batch_max_records);
    const auto linger = std::chrono::milliseconds(cfg_.pipeline.batch_linger_ms);
    using clock = std::chrono::steady_clock;

    write_batch batch;
    std::vector<pending_push> waiting;  // pushes in this batch, answered once it is written
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> next_offsets;
    clock::time_point first_at{};
    auto last_health_check = clock::now();
    processed item;

    auto take = [&](processed& p) {
        const record_source& src = std::visit([](const auto& entry) -> const record_source& { return entry.source; }, p);
        if (src.from_kafka()) {
            auto& next = next_offsets[{src.topic, src.partition}];
            next = std::max(next, src.offset + 1);
        }
        add_to_batch(batch, p);
    };

    while (!aborted()) {
        const auto seen = readable_.epoch();
        std::size_t pulled = 0;
        for (auto* in : inputs_) {
            std::size_t n = 0;
            while (batch.records.size() + batch.dead_letters.size() + batch.skipped < max_records &&
                   in->queue.try_pop(item)) {
                if (batch.empty() && batch.skipped == 0 && n == 0 && pulled == 0) first_at = clock::now();
                take(item);
                ++n;
            }
            if (n) in->writable.notify();
            pulled += n;
        }
        if (batch.records.size() + batch.dead_letters.size() + batch.skipped < max_records) {
            const bool was_empty = batch.empty() && batch.skipped == 0 && pulled == 0;
            const std::size_t n = take_pushes(batch, waiting);
            if (n && was_empty) first_at = clock::now();
            pulled += n;
        }
        const std::size_t size = batch.records.size() + batch.dead_letters.size() + batch.skipped;
        const bool full = size >= max_records;
        const bool lingered = size > 0 && clock::now() - first_at >= linger;
        const bool draining = draining_.load();
        if (size > 0 && (full || lingered || (draining && pulled == 0))) {
            for (auto& [tp, next] : next_offsets) batch.offsets.push_back({tp.first, tp.second, next});
            if (!flush(batch, waiting)) answer_pushes(waiting, batch, false);
            waiting.clear();
            batch = write_batch{};
            next_offsets.clear();
            continue;
        }
        if (pulled > 0) continue;
        if (draining && size == 0) {
            bool empty = true;
            for (auto* in : inputs_) empty = empty && in->queue.size() == 0;
            {
                std::lock_guard lock(push_mutex_);
                empty = empty && pushes_.empty();
            }
            if (empty) break;
            continue;
        }
        // Idle: a partition taken over is caught up now rather than with the next batch, and an eye
        // is kept on store health so /readyz tells the truth between batches.
        if (size == 0) apply_partition_changes();
        if (clock::now() - last_health_check >= health_check_interval) {
            last_health_check = clock::now();
            if (durable_ && !durable_->healthy()) (void)durable_->ping();
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
    // Pushes not written: their clients hear so (and may retry elsewhere).
    {
        std::lock_guard lock(push_mutex_);
        push_closed_ = true;
    }
    answer_pushes(waiting, batch, false);
    take_pushes(batch, waiting);
    answer_pushes(waiting, batch, false);
    // What was handed off is durable: the cache thread publishes it, then ends.
    {
        std::lock_guard lock(handoff_mutex_);
        handoff_closed_ = true;
    }
    handoff_cv_.notify_all();
}

status store_writer::retry(const char* what, std::atomic<std::uint64_t>* errors, const std::function<status()>& op,
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

bool store_writer::flush(write_batch& batch, std::vector<pending_push>& waiting) {
    const auto& log = module_logger(log_module::store);
    apply_partition_changes();
    if (offsets_) leave_given_up_partitions(batch);
    if (!aggregators_.empty()) aggregate(batch);
    // Readable before the commit when memory.before_commit: every record here is written
    // eventually (retried while PostgreSQL is away, consumed again after a crash).
    std::vector<const record*> newest;
    if (cfg_.memory.before_commit) newest = update_memory(batch);
    const auto unwritten = batch.records.size() + batch.dead_letters.size();
    if (durable_) {
        auto write = [&] {
            write_started_ms_.store(now_ms());
            auto s = durable_->write(batch);
            write_started_ms_.store(0);
            return s;
        };
        // A batch cannot be dropped without losing records: a permanent failure (a table changed
        // under the daemon, a revoked grant) holds ingestion until an operator fixes it.
        if (!retry("PostgreSQL write", stats_ ? &stats_->postgres_errors : nullptr, write, on_permanent::hold).ok()) {
            log->warn("shutdown timed out while PostgreSQL is failing: {} records not written; they will be "
                      "consumed again on restart",
                      unwritten);
            return false;
        }
    } else {
        for (const auto& d : batch.dead_letters)
            log->warn("dead letter (no PostgreSQL configured) {}[{}]@{}: {}", d.source.topic, d.source.partition,
                      d.source.offset, d.error);
    }
    if (dead_letter_topic_ && !batch.dead_letters.empty()) {
        // The letters are durable in PostgreSQL already: a permanent refusal of the topic (it does
        // not exist, a message is too large for it) leaves them there instead of stopping ingestion.
        auto published = retry("dead-letter topic publish", stats_ ? &stats_->dead_letter_topic_errors : nullptr,
                               [&] { return dead_letter_topic_->publish(batch.dead_letters); }, on_permanent::give_up);
        if (!published && published.retryable()) {
            log->warn("shutdown timed out while the dead-letter topic is failing: the batch's offsets are not stored");
            return false;
        }
    }

    // Durable: what a re-delivery of these partitions would repeat, and the counts.
    for (const auto& o : batch.offsets) {
        auto& next = committed_next_[{o.topic, o.partition}];
        next = std::max(next, o.next_offset);
    }
    if (stats_) {
        const auto now = now_ms();
        for (const auto& r : batch.records) {
            auto& c = stats_->set(r.set_index);
            c.written.fetch_add(1, std::memory_order_relaxed);
            if (!r.source.from_kafka()) c.pushed.fetch_add(1, std::memory_order_relaxed);
            c.saw_event_time(r.event_time_ms);
            c.last_write_ms.store(now, std::memory_order_relaxed);
        }
        for (const auto& d : batch.dead_letters) stats_->set(d.set_index).dead_letters.fetch_add(1, std::memory_order_relaxed);
        stats_->batches.fetch_add(1, std::memory_order_relaxed);
    }
    records_.fetch_add(batch.records.size(), std::memory_order_relaxed);
    dead_letters_.fetch_add(batch.dead_letters.size(), std::memory_order_relaxed);
    if (!cfg_.memory.before_commit) newest = update_memory(batch);
    hand_off({std::move(batch), std::move(waiting), std::move(newest)});
    return true;
}

void store_writer::hand_off(durable_batch done) {
    std::unique_lock lock(handoff_mutex_);
    handoff_cv_.wait(lock, [&] { return handoff_.empty(); });
    handoff_.push_back(std::move(done));
    lock.unlock();
    handoff_cv_.notify_all();
}

void store_writer::run_cache() {
    using clock = std::chrono::steady_clock;
    auto last_health_check = clock::now();
    while (true) {
        std::optional<durable_batch> next;
        {
            std::unique_lock lock(handoff_mutex_);
            handoff_cv_.wait_for(lock, idle_wait, [&] { return !handoff_.empty() || handoff_closed_; });
            if (!handoff_.empty()) {
                next.emplace(std::move(handoff_.front()));
                handoff_.pop_front();
            } else if (handoff_closed_) {
                break;
            }
        }
        if (cache_stale_since_ms_) resync_cache();  // at most once a second
        if (next) {
            handoff_cv_.notify_all();  // room for the writer's next batch
            publish(*next);
            continue;
        }
        // Idle: keep an eye on Redis so /readyz tells the truth between batches.
        if (cache_ && clock::now() - last_health_check >= health_check_interval) {
            last_health_check = clock::now();
            if (!cache_->healthy()) (void)cache_->ping();
        }
    }
}

std::vector<const record*> store_writer::update_memory(write_batch& batch) {
    auto newest = newest_of_each_key(batch.records);
    if (!cfg_.memory.enabled) return newest;
    std::unique_lock<std::mutex> hold;
    if (offsets_) hold = offsets_->hold_assignment();
    for (const record* r : newest) {
        // Only what this instance still owns: a revoked partition's keys belong to its new owner.
        if (offsets_ && r->source.from_kafka() && !offsets_->owns(r->source.topic, r->source.partition)) continue;
        memory_.upsert(r->set_index, {r->key, r->event_time_ms, r->ingested_at_ms, r->source.partition, r->values});
    }
    return newest;
}

void store_writer::publish(durable_batch& done) {
    const auto& log = module_logger(log_module::store);
    write_batch& batch = done.batch;
    const auto& order = done.newest;
    if (cache_ && !cache_stale_since_ms_) {
        if (auto s = cache_->apply(order); !s) {
            log->warn("Redis update failed ({} keys); reads fall back to memory and PostgreSQL, and Redis is "
                      "brought up to date when it answers again: {}",
                      order.size(), s.message());
            cache_stale_since_ms_ = now_ms() - 60000;
            if (stats_) stats_->redis_errors.fetch_add(1, std::memory_order_relaxed);
        }
    }
    if (offsets_ && !batch.offsets.empty()) offsets_->offsets_durable(batch.offsets);
    answer_pushes(done.pushes, batch, true);
}

void store_writer::resync_cache() {
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

}  // namespace sluice
