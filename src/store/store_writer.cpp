#include "sluice/store/store_writer.hpp"
#include "sluice/store/quality_monitor.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "sluice/core/clock.hpp"
#include "sluice/core/log.hpp"
#include "sluice/store/newest_of_each_key.hpp"
#include "writer/aggregation_gate.hpp"
#include "writer/cache_publisher.hpp"
#include "writer/flight_order.hpp"
#include "writer/offset_chain.hpp"
#include "writer/pending_push.hpp"
#include "writer/retry.hpp"

namespace sluice {

namespace {
constexpr std::chrono::milliseconds idle_wait{100};
constexpr std::chrono::milliseconds health_check_interval{2000};
// Fenced writes of one batch in a row before it counts as a failure (retried with backoff): each
// round means another writer made progress on one of its partitions.
constexpr int max_fenced_rounds = 16;
}  // namespace

store_writer::store_writer(const config& cfg, std::vector<channel<processed>*> inputs, wakeup& readable,
                           durable_store* durable, latest_cache* cache, memory_index& memory, offset_sink* offsets,
                           dead_letter_publisher* dead_letter_topic)
    : cfg_(cfg),
      inputs_(std::move(inputs)),
      readable_(readable),
      durable_(durable),
      memory_(memory),
      offsets_(offsets),
      dead_letter_topic_(dead_letter_topic),
      retry_(std::make_unique<writer::retrier>()),
      chain_(std::make_unique<writer::offset_chain>(durable, cfg.kafka.group_id)),
      gate_(std::make_unique<writer::aggregation_gate>(cfg, durable, *retry_)),
      publisher_(std::make_unique<writer::cache_publisher>(cfg, durable, cache, memory, offsets)),
      order_(std::make_unique<writer::flight_order>([this] { return retry_->aborted(); })) {
    // More than one batch in flight: a lane thread per PostgreSQL write connection.
    lane_count_ = durable && cfg.pipeline.batches_in_flight > 1
                      ? std::min<std::size_t>(static_cast<std::size_t>(cfg.pipeline.batches_in_flight), durable->write_lanes())
                      : 0;
    if (lane_count_ > 0) lane_queue_ = std::make_unique<writer::flight_queue>(lane_count_);
}

store_writer::~store_writer() {
    static const std::atomic<bool> stop_now{true};
    if (thread_.joinable() || publisher_->running()) drain_and_join(stop_now);
}

void store_writer::set_aggregators(std::vector<aggregation_state*> aggregators) {
    gate_->set_aggregators(std::move(aggregators));
}

void store_writer::set_stats(pipeline_stats* stats) {
    stats_ = stats;
    gate_->set_stats(stats);
    publisher_->set_stats(stats);
}

void store_writer::start() {
    // What this group already committed: a record below it is a re-delivery, already aggregated.
    if (durable_) {
        if (auto stored = durable_->read_offsets(cfg_.kafka.group_id)) gate_->seed(stored.value());
    }
    publisher_->start();
    for (std::size_t lane = 0; lane < lane_count_; ++lane) lanes_.emplace_back([this, lane] { run_lane(lane); });
    thread_ = std::thread([this] { run(); });
}

bool store_writer::push(std::vector<processed> items, push_done done) {
    {
        std::lock_guard lock(push_mutex_);
        if (push_closed_) return false;
        if (pushed_items_ + items.size() > static_cast<std::size_t>(cfg_.pipeline.queue_capacity) && pushed_items_ > 0)
            return false;
        writer::pending_push p;
        p.first_seq = push_seq_;
        push_seq_ += static_cast<std::int64_t>(items.size());
        for (std::size_t i = 0; i < items.size(); ++i) {
            record_source& src = std::visit([](auto& item) -> record_source& { return item.source; }, items[i]);
            // The sequence answers the push; a record released from the quarantine keeps its source's name.
            src = record_source{released_from_quarantine(src.topic) ? src.topic : std::string(push_topic), -1,
                                p.first_seq + static_cast<std::int64_t>(i)};
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
    if (revoked) chain_->forget(partitions);
    if (!gate_->enabled()) return;
    gate_->partitions_changed(partitions, revoked);
    readable_.notify();  // an idle writer catches up at once
}

bool store_writer::catching_up(const std::string& topic, std::int32_t partition) const {
    return gate_->catching_up(topic, partition);
}

void store_writer::add_to_batch(write_batch& batch, processed& item) {
    if (auto* r = std::get_if<record>(&item)) {
        if (stats_ && r->trace.produced_ms >= 0) {
            stats_->trace.observe(trace_stage::consumed, r->trace.produced_ms, r->trace.consumed_us);
            stats_->trace.observe(trace_stage::parsed, r->trace.produced_ms, r->trace.parsed_us);
            stats_->trace.observe(trace_stage::batched, r->trace.produced_ms, now_us());
        }
        batch.records.push_back(std::move(*r));
    } else if (auto* d = std::get_if<dead_letter>(&item)) {
        batch.dead_letters.push_back(std::move(*d));
    } else {
        ++batch.skipped;
        if (stats_) stats_->set(std::get<skipped>(item).set_index).skipped.fetch_add(1, std::memory_order_relaxed);
    }
}

std::size_t store_writer::take_pushes(write_batch& batch, std::vector<writer::pending_push>& waiting) {
    std::vector<writer::pending_push> taken;
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

void store_writer::drain_and_join(const std::atomic<bool>& abort) {
    retry_->set_abort(abort);
    draining_.store(true);
    readable_.notify();
    if (thread_.joinable()) thread_.join();
    // run() closes the lanes and the hand-off as it ends; also when it never started.
    if (lane_queue_) lane_queue_->close();
    for (auto& lane : lanes_)
        if (lane.joinable()) lane.join();
    publisher_->close();
    publisher_->join();
}

std::int64_t store_writer::write_waiting_ms() const {
    std::int64_t oldest = 0;
    for (const auto& started : write_started_ms_) {
        const auto t = started.load();
        if (t && (!oldest || t < oldest)) oldest = t;
    }
    return oldest ? now_ms() - oldest : 0;
}

std::string store_writer::last_error() const { return retry_->last_error(); }

void store_writer::run() {
    const auto& log = module_logger(log_module::store);
    const auto max_records = static_cast<std::size_t>(cfg_.pipeline.batch_max_records);
    const auto linger = std::chrono::milliseconds(cfg_.pipeline.batch_linger_ms);
    using clock = std::chrono::steady_clock;

    write_batch batch;
    std::vector<writer::pending_push> waiting;  // pushes in this batch, answered once it is written
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> next_offsets;
    clock::time_point first_at{};
    // The batch began with records that queued while the writer was writing the one before: they
    // have waited a write's time already, so the batch closes as soon as the queues are empty
    // instead of lingering for more. A writer that keeps up writes small batches, one that falls
    // behind big ones (up to batch_max_records).
    bool queued_during_write = false;
    bool just_flushed = false;
    auto last_health_check = clock::now();
    processed item;

    auto take = [&](processed& p) {
        const record_source& src = std::visit([](const auto& i) -> const record_source& { return i.source; }, p);
        if (src.from_kafka()) {
            auto& next = next_offsets[{src.topic, src.partition}];
            next = std::max(next, src.offset + 1);
        }
        add_to_batch(batch, p);
    };

    while (!retry_->aborted()) {
        const auto seen = readable_.epoch();
        std::size_t pulled = 0;
        for (auto* in : inputs_) {
            std::size_t n = 0;
            while (batch.records.size() + batch.dead_letters.size() + batch.skipped < max_records &&
                   in->queue.try_pop(item)) {
                if (batch.empty() && batch.skipped == 0 && n == 0 && pulled == 0) {
                    first_at = clock::now();
                    queued_during_write = just_flushed;
                }
                take(item);
                ++n;
            }
            if (n) in->writable.notify();
            pulled += n;
        }
        if (batch.records.size() + batch.dead_letters.size() + batch.skipped < max_records) {
            const bool was_empty = batch.empty() && batch.skipped == 0 && pulled == 0;
            const std::size_t n = take_pushes(batch, waiting);
            if (n && was_empty) {
                first_at = clock::now();
                queued_during_write = just_flushed;
            }
            pulled += n;
        }
        const std::size_t size = batch.records.size() + batch.dead_letters.size() + batch.skipped;
        const bool full = size >= max_records;
        const bool lingered = size > 0 && (clock::now() - first_at >= linger || (queued_during_write && pulled == 0));
        const bool draining = draining_.load();
        just_flushed = false;
        if (size > 0 && (full || lingered || (draining && pulled == 0))) {
            just_flushed = true;
            for (auto& [tp, next] : next_offsets) batch.offsets.push_back({tp.first, tp.second, next});
            flush(batch, waiting);
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
        if (size == 0) gate_->apply_partition_changes();
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
    writer::answer_pushes(waiting, batch, false);
    take_pushes(batch, waiting);
    writer::answer_pushes(waiting, batch, false);
    // The lanes write what is in flight, then end; what was handed off is durable: the cache
    // thread publishes it, then ends.
    if (lane_queue_) lane_queue_->close();
    for (auto& lane : lanes_)
        if (lane.joinable()) lane.join();
    publisher_->close();
}

void store_writer::flush(write_batch& batch, std::vector<writer::pending_push>& waiting) {
    const auto& log = module_logger(log_module::store);
    gate_->apply_partition_changes();
    if (offsets_) leave_given_up_partitions(batch);
    std::atomic<std::uint64_t>* postgres_errors = stats_ ? &stats_->postgres_errors : nullptr;
    // What each partition continues from; a re-delivery of what is stored already leaves the batch.
    auto fit = [&] {
        auto dropped = chain_->fit(batch);
        if (dropped && dropped.value())
            log->info("{} re-delivered records are in PostgreSQL already and are not written again", dropped.value());
        return dropped.as_status();
    };
    if (!retry_->run("reading consumer_offsets", postgres_errors, fit, writer::on_permanent::hold).ok()) {
        writer::answer_pushes(waiting, batch, false);
        return;
    }
    if (gate_->enabled()) gate_->aggregate(batch);
    // Readable before the commit when memory.before_commit: every record here is written
    // eventually (retried while PostgreSQL is away, consumed again after a crash).
    std::vector<const record*> newest;
    if (cfg_.memory.before_commit) newest = update_memory(batch);
    // The next batch continues where this one ends, and a re-delivery of it is not aggregated again.
    chain_->advance(batch.offsets);
    gate_->committed(batch.offsets);
    writer::flight f{order_->next(), std::move(batch), std::move(waiting), std::move(newest)};
    if (lanes_.empty()) {
        commit(f, 0);
    } else {
        lane_queue_->push(std::move(f));
    }
}

void store_writer::run_lane(std::size_t lane) {
    while (auto f = lane_queue_->pop()) {
        commit(*f, lane);
        lane_queue_->done();
    }
}

bool store_writer::write_durable(writer::flight& f, std::size_t lane) {
    const auto& log = module_logger(log_module::store);
    write_batch& batch = f.batch;
    const bool in_lanes = !lanes_.empty();
    const durable_store::write_order order{[&] { return order_->turn(f.number); }, [&] { order_->passed(f.number); }};
    auto attempt = [&] {
        write_started_ms_[lane].store(now_ms());
        status s;
        if (in_lanes) {
            order_->retry(f.number);
            s = durable_->write_in_lane(batch, lane, order);
        } else {
            s = durable_->write(batch);
        }
        write_started_ms_[lane].store(0);
        return s;
    };
    bool refitted = false;
    auto write = [&] {
        auto s = attempt();
        for (int round = 1; s.kind() == error_kind::not_owned && round <= max_fenced_rounds; ++round) {
            if (stats_) stats_->fenced_batches.fetch_add(1, std::memory_order_relaxed);
            // An earlier batch in flight that failed after this one's turn leaves its offsets
            // unstored: once every earlier batch is through, the batch is tried again as it is.
            if (in_lanes && round == 1) {
                if (!order_->before_finished(f.number)) return s;
                s = attempt();
                if (s.kind() != error_kind::not_owned) break;
            }
            // Fenced: another writer stored one of the batch's partitions since the chain read it.
            // The batch is fitted again to what is stored now and written at once: what the other
            // writer stored leaves it, the rest continues from there.
            log->warn("{}; fitting it again to the offsets stored now", s.message());
            chain_->fenced(batch);
            auto dropped = chain_->fit(batch);
            if (!dropped) return dropped.as_status();
            refitted = refitted || dropped.value() > 0;
            s = attempt();
        }
        return s;
    };
    // A batch cannot be dropped without losing records: a permanent failure (a table changed
    // under the daemon, a revoked grant) holds ingestion until an operator fixes it.
    std::atomic<std::uint64_t>* postgres_errors = stats_ ? &stats_->postgres_errors : nullptr;
    if (!retry_->run("PostgreSQL write", postgres_errors, write, writer::on_permanent::hold).ok()) {
        log->warn("shutdown timed out while PostgreSQL is failing: {} records not written; they will be "
                  "consumed again on restart",
                  batch.records.size() + batch.dead_letters.size());
        return false;
    }
    chain_->advance(batch.offsets);
    // Records fitted out after memory took them point elsewhere now: the newest of each key again.
    if (refitted && cfg_.memory.before_commit) f.newest = newest_of_each_key(batch.records);
    return true;
}

void store_writer::commit(writer::flight& f, std::size_t lane) {
    const auto& log = module_logger(log_module::store);
    write_batch& batch = f.batch;
    bool ok = true;
    if (durable_) {
        ok = write_durable(f, lane);
    } else {
        for (const auto& d : batch.dead_letters)
            log->warn("dead letter (no PostgreSQL configured) {}[{}]@{}: {}", d.source.topic, d.source.partition,
                      d.source.offset, d.error);
    }
    // In the order the batches were made: dead letters, counts, Redis, offsets, answers.
    if (ok && !lanes_.empty()) ok = order_->before_finished(f.number);
    if (ok && dead_letter_topic_ && !batch.dead_letters.empty()) {
        // The letters are durable in PostgreSQL already: a permanent refusal of the topic (it does
        // not exist, a message is too large for it) leaves them there instead of stopping ingestion.
        auto published = retry_->run("dead-letter topic publish", stats_ ? &stats_->dead_letter_topic_errors : nullptr,
                                     [&] { return dead_letter_topic_->publish(batch.dead_letters); },
                                     writer::on_permanent::give_up);
        if (!published && published.retryable()) {
            log->warn("shutdown timed out while the dead-letter topic is failing: the batch's offsets are not stored");
            ok = false;
        }
    }
    if (!ok) {
        writer::answer_pushes(f.waiting, batch, false);
        order_->finished(f.number);
        return;
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
        stats_->trace_reached(trace_stage::committed, batch.records);
    }
    if (quality_) quality_->observe(batch);
    records_.fetch_add(batch.records.size(), std::memory_order_relaxed);
    dead_letters_.fetch_add(batch.dead_letters.size(), std::memory_order_relaxed);
    if (!cfg_.memory.before_commit) f.newest = update_memory(batch);
    publisher_->hand_off({std::move(batch), std::move(f.waiting), std::move(f.newest)});
    order_->finished(f.number);
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
    if (stats_) stats_->trace_reached(trace_stage::memory, batch.records);
    return newest;
}

}  // namespace sluice
