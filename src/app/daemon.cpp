#include "sluice/app/daemon.hpp"

#include <algorithm>
#include <mutex>

#include <spdlog/spdlog.h>

#include "lookup_pool.hpp"
#include "push_sink.hpp"
#include "redis_io_reader.hpp"
#include "telemetry.hpp"
#include "sluice/core/bounded_queue.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/ingest/kafka_ingest.hpp"
#include "sluice/preprocess/aggregator.hpp"
#include "sluice/preprocess/preprocess_stage.hpp"
#include "sluice/serve/http_server.hpp"
#include "sluice/store/memory_index.hpp"
#include "sluice/store/postgres_store.hpp"
#include "sluice/store/redis_cache.hpp"
#include "sluice/store/store_writer.hpp"

namespace sluice {

namespace {

constexpr std::size_t lookup_backlog = 10000;
// What a read is told when the lookup pool (or the single-key reads waiting for it) is full.
constexpr const char* backlog_full = "lookup backlog is full; try again";
constexpr std::int64_t write_stall_ms = 5000;  // a write waiting longer makes /readyz 503

/// Latest values for the API: the memory index on the calling thread; on a miss, Redis and then
/// PostgreSQL on the lookup pool.
class tiered_reader final : public feature_reader, public history_reader {
public:
    tiered_reader(const config& cfg, memory_index& memory, latest_cache* cache, durable_store* durable,
                  lookup_pool& pool, std::size_t max_waiting, std::vector<aggregator*> aggregators)
        : cfg_(cfg), memory_(memory), cache_(cache), durable_(durable), pool_(pool),
          redis_io_(cache && cfg.redis ? std::make_unique<redis_io_reader>(cfg) : nullptr), max_waiting_(max_waiting),
          aggregators_(std::move(aggregators)) {}

    void get_latest(std::uint32_t set_index, std::string key, latest_callback done) override {
        if (cfg_.memory.enabled) {
            if (auto hit = memory_.find_value(set_index, key)) {
                with_aggregations_now(set_index, *hit);
                done(std::move(hit));
                return;
            }
        }
        if (!cache_ && !durable_) {
            done(std::optional<latest_entry>{});
            return;
        }
        // On an io thread: Redis asynchronously on that thread; PostgreSQL (on the pool) only for
        // what Redis has not.
        if (cache_ && redis_io_) {
            auto on_redis = [this, set_index, key, done](result<std::optional<latest_entry>> r) {
                if (r && r.value()) with_aggregations_now(set_index, *r.value());
                if ((r && r.value()) || !durable_) return done(std::move(r));
                std::string redis_error = r ? std::string() : r.message();
                auto task = [this, set_index, key, redis_error = std::move(redis_error), done] {
                    done(read_durable(set_index, key, redis_error));
                };
                if (!pool_.submit(std::move(task)))
                    done(result<std::optional<latest_entry>>::failure(backlog_full));
            };
            if (redis_io_->read(set_index, key, std::move(on_redis))) return;
        }
        // Wait with the other single-key reads: one pool task reads all that are waiting.
        bool full = false;
        {
            std::lock_guard lock(waiting_mutex_);
            full = waiting_.size() >= max_waiting_;
            if (!full) {
                waiting_.push_back({set_index, std::move(key), std::move(done)});
                if (draining_) return;
                draining_ = true;
            }
        }
        if (full) return done(result<std::optional<latest_entry>>::failure(backlog_full));
        schedule_drain();
    }

    // Memory answers on the calling thread; the keys it misses are read in one task on the lookup
    // pool (Redis, then PostgreSQL for what Redis misses), not one task per key.
    void get_latest_many(std::uint32_t set_index, std::vector<std::string> keys, std::optional<std::int64_t> as_of_ms,
                         latest_many_callback done) override {
        if (as_of_ms) return feature_reader::get_latest_many(set_index, std::move(keys), as_of_ms, std::move(done));
        using answer = result<std::optional<latest_entry>>;
        std::vector<answer> answers(keys.size(), answer(std::optional<latest_entry>{}));
        std::vector<std::size_t> misses;
        for (std::size_t i = 0; i < keys.size(); ++i) {
            auto hit = cfg_.memory.enabled ? memory_.find_value(set_index, keys[i]) : std::nullopt;
            if (hit) {
                with_aggregations_now(set_index, *hit);
                answers[i] = std::move(hit);
            } else {
                misses.push_back(i);
            }
        }
        if (misses.empty() || (!cache_ && !durable_)) return done(std::move(answers));
        const std::size_t n = keys.size();
        auto task = [this, set_index, keys = std::move(keys), misses = std::move(misses), answers = std::move(answers),
                     done]() mutable {
            read_stores(set_index, keys, misses, answers);
            done(std::move(answers));
        };
        if (!pool_.submit(std::move(task)))
            done(std::vector<answer>(n, answer::failure(backlog_full)));
    }

    void get_as_of(std::uint32_t set_index, std::string key, std::int64_t at_ms, latest_callback done) override {
        if (!durable_) {
            done(result<std::optional<latest_entry>>::failure("as_of lookups need PostgreSQL (history)"));
            return;
        }
        auto task = [this, set_index, key = std::move(key), at_ms, done]() {
            const auto& set = cfg_.feature_sets[set_index];
            auto slice = durable_->read_as_of(set_index, key, at_ms, set.widest_window_ms());
            if (!slice) return done(result<std::optional<latest_entry>>::failure(slice.message()));
            if (!slice->newest) return done(std::optional<latest_entry>{});
            latest_entry e = std::move(*slice->newest);
            if (!set.aggregations.empty()) {
                auto values = aggregate_events(set, slice->events, at_ms);
                e.values.insert(e.values.end(), values.begin(), values.end());
            }
            done(std::optional<latest_entry>{std::move(e)});
        };
        if (!pool_.submit(std::move(task)))
            done(result<std::optional<latest_entry>>::failure(backlog_full));
    }

    void get_history(history_request req, history_callback done) override {
        if (!durable_) {
            done(result<history_page>::failure("history needs PostgreSQL, which is not configured"));
            return;
        }
        auto task = [this, req = std::move(req), done]() {
            // One row more than asked tells whether another page follows.
            auto rows = durable_->read_history(req.set_index, req.key, req.from_ms, req.to_ms, req.limit + 1,
                                               req.after ? req.after->event_time_ms : 0, req.after ? req.after->id : -1);
            if (!rows) return done(result<history_page>::failure(rows.message()));
            history_page page;
            auto& r = rows.value();
            const bool more = r.size() > req.limit;
            if (more) r.resize(req.limit);
            if (more && !r.empty()) page.next = history_cursor{r.back().entry.event_time_ms, r.back().id};
            page.records.reserve(r.size());
            for (auto& h : r) page.records.push_back(std::move(h.entry));
            done(std::move(page));
        };
        if (!pool_.submit(std::move(task))) done(result<history_page>::failure(backlog_full));
    }

private:
    // A single-key read that missed memory, waiting for the stores.
    struct waiting_read {
        std::uint32_t set_index;
        std::string key;
        latest_callback done;
    };

    // Starts a pool task that reads what is waiting; when the pool refuses, the waiting reads
    // are answered with the refusal.
    void schedule_drain() {
        if (pool_.submit([this] { drain_waiting(); })) return;
        std::vector<waiting_read> refused;
        {
            std::lock_guard lock(waiting_mutex_);
            refused.swap(waiting_);
            draining_ = false;
        }
        for (auto& w : refused) w.done(result<std::optional<latest_entry>>::failure(backlog_full));
    }

    // On a lookup pool thread: every single-key read waiting now, in one Redis pipeline per set
    // (instead of a task, a pooled connection and a round trip each: under load, reads arrive
    // faster than one round trip, so many share it). Reads that arrive meanwhile are taken by
    // the next task, queued behind the pool's other work so that it is not starved.
    void drain_waiting() {
        std::vector<waiting_read> batch;
        {
            std::lock_guard lock(waiting_mutex_);
            batch.swap(waiting_);
        }
        std::vector<std::size_t> order(batch.size());
        for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t a, std::size_t b) { return batch[a].set_index < batch[b].set_index; });
        for (std::size_t from = 0; from < order.size();) {
            const std::uint32_t set_index = batch[order[from]].set_index;
            std::size_t to = from;
            std::vector<std::string> keys;
            while (to < order.size() && batch[order[to]].set_index == set_index) keys.push_back(batch[order[to++]].key);
            std::vector<std::size_t> which(keys.size());
            for (std::size_t i = 0; i < which.size(); ++i) which[i] = i;
            std::vector<result<std::optional<latest_entry>>> answers(keys.size(), std::optional<latest_entry>{});
            read_stores(set_index, keys, which, answers);
            for (std::size_t i = 0; i < answers.size(); ++i) batch[order[from + i]].done(std::move(answers[i]));
            from = to;
        }
        {
            std::lock_guard lock(waiting_mutex_);
            if (waiting_.empty()) {
                draining_ = false;
                return;
            }
        }
        schedule_drain();
    }

    // On a lookup pool thread: keys[i] for each i in `which` from Redis (one pipeline), then from
    // PostgreSQL where Redis has no entry, into answers[i]. When both fail, both errors are told.
    void read_stores(std::uint32_t set_index, const std::vector<std::string>& keys, const std::vector<std::size_t>& which,
                     std::vector<result<std::optional<latest_entry>>>& answers) const {
        std::vector<std::string> redis_errors(which.size());
        std::vector<std::size_t> rest;  // positions in `which` left for PostgreSQL
        if (cache_) {
            std::vector<std::string> asked;
            asked.reserve(which.size());
            for (std::size_t i : which) asked.push_back(keys[i]);
            auto got = cache_->read_latest_many(set_index, asked);
            for (std::size_t j = 0; j < which.size(); ++j) {
                auto& r = got[j];
                if (r && r.value()) {
                    with_aggregations_now(set_index, *r.value());
                    answers[which[j]] = std::move(r);
                    continue;
                }
                if (!r) redis_errors[j] = r.message();
                if (durable_)
                    rest.push_back(j);
                else
                    answers[which[j]] = std::move(r);
            }
        } else {
            for (std::size_t j = 0; j < which.size(); ++j) rest.push_back(j);
        }
        for (std::size_t j : rest) answers[which[j]] = read_durable(set_index, keys[which[j]], redis_errors[j]);
    }

    // On a lookup pool thread: one key from PostgreSQL; when that fails too, both errors are told.
    result<std::optional<latest_entry>> read_durable(std::uint32_t set_index, const std::string& key,
                                                     const std::string& redis_error) const {
        auto r = durable_->read_latest(set_index, key);
        if (r && r.value()) with_aggregations_now(set_index, *r.value());
        if (!r && !redis_error.empty()) r = result<std::optional<latest_entry>>::failure(redis_error + "; " + r.message());
        return r;
    }

    // Stored aggregation values are as of their write; the aggregator's are as of now (windows
    // move with time, and late events within the lateness count). Used when it holds the key.
    void with_aggregations_now(std::uint32_t set_index, latest_entry& e) const {
        aggregator* agg = aggregators_[set_index];
        if (!agg) return;
        // Only state this instance keeps up to date: keys of its partitions, or pushed ones.
        const auto partition = agg->partition_of(e.key);
        if (!partition || (*partition >= 0 && owns_ && !owns_(cfg_.feature_sets[set_index].topic, *partition))) return;
        const auto now_values = agg->values_at(e.key, now_ms());
        e.values.resize(cfg_.feature_sets[set_index].fields.size());
        e.values.insert(e.values.end(), now_values.begin(), now_values.end());
    }

    const config& cfg_;
    memory_index& memory_;
    latest_cache* cache_;
    durable_store* durable_;
    lookup_pool& pool_;
    std::unique_ptr<redis_io_reader> redis_io_;  // with Redis: single-key reads on the io threads
    const std::size_t max_waiting_;  // single-key reads waiting at most (more: 503, as a full pool)
    std::mutex waiting_mutex_;
    std::vector<waiting_read> waiting_;
    bool draining_ = false;  // a drain task is queued or running
    std::vector<aggregator*> aggregators_;
    std::function<bool(const std::string&, std::int32_t)> owns_;

public:
    /// Which partitions this instance owns (aggregation state of others' is not current).
    void set_owner(std::function<bool(const std::string&, std::int32_t)> owns) { owns_ = std::move(owns); }
};

}  // namespace

struct daemon::impl final : health_source {
    explicit impl(const config& c) : cfg(c), memory(c.feature_sets.size()) {}

    const config& cfg;
    std::shared_ptr<spdlog::logger> log = spdlog::get("main") ? spdlog::get("main") : spdlog::default_logger();
    durable_store_ptr durable;
    latest_cache_ptr cache;
    memory_index memory;
    std::vector<std::unique_ptr<aggregator>> aggregators;  // per set; null without aggregations
    wakeup writer_wakeup;
    std::vector<std::unique_ptr<wakeup>> worker_wakeups;
    std::vector<std::unique_ptr<channel<raw_message>>> raw_channels;
    std::vector<std::unique_ptr<channel<processed>>> processed_channels;
    std::unique_ptr<store_writer> writer;
    std::unique_ptr<preprocess_stage> preprocess;
    std::unique_ptr<embedded_kafka> broker;
    std::unique_ptr<kafka_ingest> ingest;
    std::unique_ptr<kafka_dead_letter_publisher> dead_letter_topic;
    std::unique_ptr<lookup_pool> lookups;
    std::unique_ptr<tiered_reader> reader;
    pipeline_stats stats{cfg.feature_sets.size()};
    std::unique_ptr<prometheus_telemetry> metrics;
    std::unique_ptr<push_sink> pushes;
    serve_context serve_ctx;
    http_server_ptr http;
    std::unique_ptr<event_generator> generator;
    std::atomic<bool> stopping{false};
    bool left_threads = false;  // stop() left a Kafka consumer handle running

    std::vector<std::string> not_ready_reasons() const override {
        std::vector<std::string> reasons;
        if (stopping.load()) reasons.emplace_back("shutting down");
        if (durable && !durable->healthy()) {
            const auto e = writer ? writer->last_error() : std::string();
            reasons.push_back("postgres: " + (e.empty() ? std::string("not reachable") : e));
        } else if (const auto waiting = writer ? writer->write_waiting_ms() : 0; waiting > write_stall_ms) {
            reasons.push_back("postgres: a batch write has been waiting " + std::to_string(waiting / 1000) +
                              " s (a lock or a stalled server)");
        }
        if (cache && !cache->healthy()) reasons.emplace_back("redis: not reachable");
        if (!ingest || !ingest->has_assignment()) reasons.emplace_back("kafka: no partitions assigned yet");
        return reasons;
    }
};

daemon::daemon(const config& cfg) : impl_(std::make_unique<impl>(cfg)) {}

daemon::~daemon() {
    if (impl_->writer || impl_->ingest || impl_->http) stop();
}

status daemon::start() {
    auto& d = *impl_;
    const auto& cfg = d.cfg;
    if (cfg.postgres) {
        d.durable = make_postgres_store(cfg);
        if (auto s = d.durable->prepare(); !s) return s;
    }
    if (cfg.redis) {
        d.cache = make_redis_cache(cfg);
        // Redis may come later: the writer keeps trying and reads fall back meanwhile.
        if (auto s = d.cache->ping(); !s) d.log->warn("{}", s.message());
    }

    const auto capacity = static_cast<std::size_t>(cfg.pipeline.queue_capacity);
    std::vector<channel<raw_message>*> raw;
    std::vector<channel<processed>*> done;
    for (int i = 0; i < cfg.pipeline.preprocess_threads; ++i) {
        d.worker_wakeups.push_back(std::make_unique<wakeup>());
        d.raw_channels.push_back(std::make_unique<channel<raw_message>>(capacity, d.worker_wakeups.back().get()));
        d.processed_channels.push_back(std::make_unique<channel<processed>>(capacity, &d.writer_wakeup));
        raw.push_back(d.raw_channels.back().get());
        done.push_back(d.processed_channels.back().get());
    }

    std::string bootstrap = cfg.kafka.brokers;
    if (cfg.kafka.is_embedded()) {
        d.broker = std::make_unique<embedded_kafka>();
        if (auto s = d.broker->start(cfg); !s) return s;
        bootstrap = d.broker->bootstrap_servers();
    }
    d.ingest = std::make_unique<kafka_ingest>(cfg, bootstrap, raw, d.durable.get());
    // A revoked partition's keys now belong to another instance: drop our copies before they go stale.
    d.ingest->on_revoke([&d](const std::vector<partition_offset>& revoked) {
        for (std::uint32_t set = 0; set < d.cfg.feature_sets.size(); ++set) {
            std::vector<std::int32_t> partitions;
            for (const auto& p : revoked)
                if (p.topic == d.cfg.feature_sets[set].topic) partitions.push_back(p.partition);
            if (!partitions.empty()) d.memory.evict_partitions(set, partitions);
        }
        if (d.writer) d.writer->partitions_changed(revoked, /*revoked=*/true);
    });
    d.ingest->on_assign([&d](const std::vector<partition_offset>& assigned) {
        if (d.writer) d.writer->partitions_changed(assigned, /*revoked=*/false);
    });
    if (!cfg.kafka.dead_letter_topic.empty()) {
        d.dead_letter_topic = std::make_unique<kafka_dead_letter_publisher>(cfg, bootstrap);
        if (auto s = d.dead_letter_topic->start(); !s) return s;
    }
    d.writer = std::make_unique<store_writer>(cfg, done, d.writer_wakeup, d.durable.get(), d.cache.get(), d.memory,
                                              d.ingest.get(), d.dead_letter_topic.get());
    d.preprocess = std::make_unique<preprocess_stage>(cfg, raw, done);
    // Aggregation state: rebuilt from history (the widest window plus the allowed lateness), so it
    // equals what it was before a restart or crash.
    std::vector<aggregator*> aggregator_ptrs;
    for (std::uint32_t s = 0; s < cfg.feature_sets.size(); ++s) {
        const auto& set = cfg.feature_sets[s];
        if (set.aggregations.empty()) {
            d.aggregators.emplace_back();
            aggregator_ptrs.push_back(nullptr);
            continue;
        }
        d.aggregators.push_back(std::make_unique<aggregator>(set));
        aggregator_ptrs.push_back(d.aggregators.back().get());
        if (!d.durable) continue;
        const auto started = std::chrono::steady_clock::now();
        std::size_t rows = 0;
        auto* agg = d.aggregators.back().get();
        history_scan scan;
        scan.since_ms = now_ms() - set.aggregation_horizon_ms();
        auto s_ok = d.durable->for_each_history(
            s, scan, [&](const std::string& key, std::int64_t t, const std::vector<value>& values, std::int32_t partition) {
                agg->add(key, t, values, partition);
                ++rows;
            });
        if (!s_ok) return s_ok;
        d.log->info("{}: aggregation state rebuilt from {} history rows ({} keys) in {} ms", set.name, rows, agg->keys(),
                    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
    }
    d.writer->set_aggregators(aggregator_ptrs);
    d.writer->set_stats(&d.stats);
    d.writer->start();
    d.preprocess->start();
    if (auto s = d.ingest->start(); !s) return s;

    d.lookups = std::make_unique<lookup_pool>(cfg.http.lookup_threads, lookup_backlog);
    d.reader = std::make_unique<tiered_reader>(cfg, d.memory, d.cache.get(), d.durable.get(), *d.lookups, lookup_backlog,
                                               aggregator_ptrs);
    telemetry_sources sources;
    sources.consumer_lag = [&d](std::uint32_t set) { return d.ingest ? d.ingest->consumer_lag(set) : -1; };
    sources.messages_consumed = [&d] { return d.ingest ? d.ingest->messages_consumed() : 0; };
    sources.preprocess_queue_depth = [&d] {
        std::size_t n = 0;
        for (const auto& c : d.raw_channels) n += c->queue.size();
        return n;
    };
    sources.write_queue_depth = [&d] {
        std::size_t n = 0;
        for (const auto& c : d.processed_channels) n += c->queue.size();
        return n;
    };
    sources.queue_capacity = [&d] { return static_cast<std::size_t>(d.cfg.pipeline.queue_capacity) * d.raw_channels.size(); };
    sources.memory_keys = [&d](std::uint32_t set) { return d.memory.size(set); };
    // The aggregation state of a partition is served once it is this instance's and caught up.
    d.reader->set_owner([&d](const std::string& topic, std::int32_t partition) {
        return d.ingest && d.ingest->owns(topic, partition) && !(d.writer && d.writer->catching_up(topic, partition));
    });
    d.metrics = std::make_unique<prometheus_telemetry>(cfg, d.stats, std::move(sources));
    d.pushes = std::make_unique<push_sink>(cfg, *d.writer, *d.lookups);
    d.serve_ctx.cfg = &cfg;
    d.serve_ctx.reader = d.reader.get();
    d.serve_ctx.health = &d;
    d.serve_ctx.history = d.reader.get();
    d.serve_ctx.ingest = d.pushes.get();
    d.serve_ctx.metrics = d.metrics.get();
    d.http = make_http_server(d.serve_ctx);
    if (auto s = d.http->start(); !s) return s;

    if (cfg.generator.enabled) {
        d.generator = std::make_unique<event_generator>(cfg, bootstrap);
        if (auto s = d.generator->start(); !s) return s;
        d.log->info("event generator: {} events/s over {} keys", cfg.generator.events_per_sec, cfg.generator.keys);
    }
    d.log->info("sluice {} started: {} feature sets, {} consumer threads, {} preprocess threads, http port {}",
                SLUICE_VERSION, cfg.feature_sets.size(), cfg.kafka.consumer_threads, cfg.pipeline.preprocess_threads,
                d.http->port());
    return status::success();
}

bool daemon::stop() {
    auto& d = *impl_;
    d.stopping.store(true);
    const auto started = std::chrono::steady_clock::now();
    const auto deadline = started + std::chrono::milliseconds(d.cfg.pipeline.shutdown_timeout_ms);
    std::atomic<bool> abort{false};
    // A watchdog turns the deadline into the abort flag the stages check.
    std::atomic<bool> finished{false};
    std::thread watchdog([&] {
        while (!finished.load() && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (!finished.load()) abort.store(true);
    });

    if (d.generator) d.generator->stop();
    if (d.ingest) {
        d.ingest->stop_fetching(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
    }
    if (d.preprocess) d.preprocess->drain_and_join(abort);
    if (d.writer) d.writer->drain_and_join(abort);
    bool complete = !abort.load();
    finished.store(true);
    watchdog.join();
    // Serving ends before the consumers close: the API reads their positions for /metrics.
    if (d.http) d.http->stop();
    if (d.lookups) d.lookups->stop();
    d.pushes.reset();
    // Commits the stored offsets to Kafka and leaves the group, within what is left of the
    // deadline but at least close_grace: a broker that is up answers in milliseconds.
    constexpr auto close_grace = std::chrono::seconds(2);
    bool left_group = true;
    if (d.ingest) left_group = d.ingest->close(std::max(deadline, std::chrono::steady_clock::now() + close_grace));
    d.left_threads = !left_group;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    if (d.writer)
        d.log->info("stopped in {} ms: {} records and {} dead letters written since start{}{}", ms.count(),
                    d.writer->records_written(), d.writer->dead_letters_written(),
                    complete ? "" : "; shutdown timed out, unwritten records will be consumed again",
                    left_group ? "" : "; the Kafka group was not left (broker unreachable)");
    complete = complete && left_group;
    d.http.reset();
    d.ingest.reset();
    d.writer.reset();
    d.dead_letter_topic.reset();
    d.preprocess.reset();
    d.generator.reset();
    d.broker.reset();
    return complete;
}

bool daemon::left_threads_running() const { return impl_->left_threads; }

std::uint16_t daemon::http_port() const { return impl_->http ? impl_->http->port() : 0; }

}  // namespace sluice
