#include "sluice/app/daemon.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "sluice/config/loader.hpp"
#include "sluice/config/reload.hpp"
#include "sluice/core/bounded_queue.hpp"
#include "sluice/core/clock.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/lookup_pool.hpp"
#include "sluice/ingest/kafka_ingest.hpp"
#include "sluice/ingest/push_source.hpp"
#include "sluice/preprocess/aggregation_rebuild.hpp"
#include "sluice/preprocess/aggregator.hpp"
#include "sluice/preprocess/preprocess_stage.hpp"
#include "sluice/preprocess/push_validation.hpp"
#include "sluice/query/tiered_reader.hpp"
#include "sluice/app/export_command.hpp"
#include "sluice/serve/http_server.hpp"
#include "sluice/serve/prometheus_telemetry.hpp"
#include "sluice/store/memory_index.hpp"
#include "sluice/store/postgres_store.hpp"
#include "sluice/store/redis_cache.hpp"
#include "sluice/store/redis_io_reader.hpp"
#include "sluice/store/activity_log.hpp"
#include "sluice/store/quality_monitor.hpp"
#include "sluice/store/quarantine.hpp"
#include "sluice/store/registry.hpp"
#include "sluice/store/store_writer.hpp"

namespace sluice {

namespace {

constexpr std::size_t lookup_backlog = 10000;
constexpr std::int64_t write_stall_ms = 5000;  // a write waiting longer makes /readyz 503

}  // namespace

// A pipeline of its own for one set (a version being backfilled, a set added live): its config,
// in which the set is `set`, has one consumer and one preprocess worker and its own pools; it
// writes into `memory` (the daemon's, or its own). Started by start(), stopped by the daemon.
struct own_pipeline {
    std::uint32_t set = 0;
    std::unique_ptr<config> cfg;
    durable_store_ptr durable;
    latest_cache_ptr cache;
    wakeup writer_wakeup;
    std::unique_ptr<wakeup> worker_wakeup;
    std::unique_ptr<channel<raw_message>> raw;
    std::unique_ptr<channel<processed>> done;
    std::unique_ptr<store_writer> writer;
    std::unique_ptr<preprocess_stage> preprocess;
    std::unique_ptr<kafka_ingest> ingest;
    std::unique_ptr<push_source> pushes;

    // A copy of `base` for one pipeline: one consumer thread, one worker, one connection each.
    static std::unique_ptr<config> narrowed(const config& base) {
        auto c = std::make_unique<config>(base);
        c->kafka.consumer_threads = 1;
        c->pipeline.preprocess_threads = 1;
        c->pipeline.batches_in_flight = 1;
        c->generator.enabled = false;
        if (c->postgres) c->postgres->pool_size = 1;
        if (c->redis) c->redis->pool_size = 1;
        return c;
    }

    // Builds the stores, queues, consumer, worker and writer over cfg, and starts them.
    status start(const std::string& brokers, memory_index& memory, aggregation_state* aggregation, pipeline_stats& stats,
                 kafka_dead_letter_publisher* dead_letters, quality_monitor* quality = nullptr) {
        const config& c = *cfg;
        if (c.postgres && !durable) durable = make_postgres_store(c);
        if (c.redis) cache = make_redis_cache(c);
        const auto capacity = static_cast<std::size_t>(c.pipeline.queue_capacity);
        worker_wakeup = std::make_unique<wakeup>();
        raw = std::make_unique<channel<raw_message>>(capacity, worker_wakeup.get());
        done = std::make_unique<channel<processed>>(capacity, &writer_wakeup);
        ingest = std::make_unique<kafka_ingest>(c, brokers, std::vector<channel<raw_message>*>{raw.get()}, durable.get());
        ingest->consume_only({set});
        // A revoked partition's keys now belong to another instance: drop our copies.
        ingest->on_revoke([this, &memory](const std::vector<partition_offset>& revoked) {
            std::vector<std::int32_t> partitions;
            for (const auto& o : revoked)
                if (o.topic == cfg->feature_sets[set].topic) partitions.push_back(o.partition);
            if (!partitions.empty()) memory.evict_partitions(set, partitions);
            if (writer) writer->partitions_changed(revoked, /*revoked=*/true);
        });
        ingest->on_assign([this](const std::vector<partition_offset>& assigned) {
            if (writer) writer->partitions_changed(assigned, /*revoked=*/false);
        });
        writer = std::make_unique<store_writer>(c, std::vector<channel<processed>*>{done.get()}, writer_wakeup, durable.get(),
                                                cache.get(), memory, ingest.get(), dead_letters);
        preprocess = std::make_unique<preprocess_stage>(c, std::vector<channel<raw_message>*>{raw.get()},
                                                        std::vector<channel<processed>*>{done.get()});
        std::vector<aggregation_state*> ports(c.feature_sets.size(), nullptr);
        ports[set] = aggregation;
        writer->set_aggregators(ports);
        writer->set_stats(&stats);
        writer->set_quality(quality);
        writer->start();
        preprocess->start();
        return ingest->start();
    }
};

// One version N >= 2 of a set: built from the topic by a consumer group of its own
// ("<group_id>.<set>_v<N>", from the earliest retained offset, exactly once like the live path
// because it is the live path: its own consumer, preprocess worker, store writer and offsets),
// then following the stream. It shares the memory index, the aggregators and the readers with
// the rest; its config differs from the daemon's only in the group and the pool sizes, so every
// set keeps its index.
struct version_pipeline : own_pipeline {
    bool live = false;  // its backfill has caught up (the catch-up watcher's thread only)
    mutable std::mutex progress_mutex;
    std::optional<backfill_progress> progress;  // updated by the catch-up watcher
    std::int64_t last_done = -1;
    std::chrono::steady_clock::time_point last_at{};
};

// The set indexes of the serving config (the start's sets, then those added by live reloads)
// mapped onto the component that holds each and its index there. Read by every request, grown
// by a reload: the table is replaced whole, never changed in place.
template <class Target>
class index_table {
public:
    struct entry {
        Target* target = nullptr;
        std::uint32_t local = 0;
    };
    void assign(std::vector<entry> entries) {
        table_.store(std::make_shared<const std::vector<entry>>(std::move(entries)), std::memory_order_release);
    }
    void append(entry e) {
        auto grown = std::make_shared<std::vector<entry>>(*table_.load(std::memory_order_acquire));
        grown->push_back(e);
        table_.store(std::move(grown), std::memory_order_release);
    }
    /// The entry of a set index; target null when unknown.
    entry at(std::uint32_t set_index) const {
        const auto t = table_.load(std::memory_order_acquire);
        return set_index < t->size() ? (*t)[set_index] : entry{};
    }

private:
    std::atomic<std::shared_ptr<const std::vector<entry>>> table_{std::make_shared<const std::vector<entry>>()};
};

// POST /v1/ingest/{set}: the pipeline that writes the addressed version (or added set).
struct push_router final : ingest_sink {
    index_table<ingest_sink> by_set;
    void push(std::uint32_t set_index, std::vector<std::string> payloads, push_callback done) override {
        const auto e = by_set.at(set_index);
        if (e.target == nullptr) return done(result<push_outcome>::failure("no pipeline for this feature set"));
        e.target->push(e.local, std::move(payloads), std::move(done));
    }
};

// Reads of a set: the daemon's reader, or the reader of a set added live.
struct read_router final : feature_reader, history_reader {
    index_table<tiered_reader> by_set;
    void get_latest(std::uint32_t set_index, std::string key, latest_callback done) override {
        const auto e = by_set.at(set_index);
        if (e.target == nullptr) return done(result<std::optional<latest_entry>>::failure("unknown feature set"));
        e.target->get_latest(e.local, std::move(key), std::move(done));
    }
    void get_as_of(std::uint32_t set_index, std::string key, std::int64_t at_ms, latest_callback done) override {
        const auto e = by_set.at(set_index);
        if (e.target == nullptr) return done(result<std::optional<latest_entry>>::failure("unknown feature set"));
        e.target->get_as_of(e.local, std::move(key), at_ms, std::move(done));
    }
    void get_latest_many(std::uint32_t set_index, std::vector<std::string> keys, std::optional<std::int64_t> as_of_ms,
                         latest_many_callback done) override {
        const auto e = by_set.at(set_index);
        if (e.target == nullptr) {
            std::vector<result<std::optional<latest_entry>>> out;
            for (std::size_t i = 0; i < keys.size(); ++i) out.push_back(result<std::optional<latest_entry>>::failure("unknown feature set"));
            return done(std::move(out));
        }
        e.target->get_latest_many(e.local, std::move(keys), as_of_ms, std::move(done));
    }
    void get_history(history_request req, history_callback done) override {
        const auto e = by_set.at(req.set_index);
        if (e.target == nullptr) return done(result<history_page>::failure("unknown feature set"));
        req.set_index = e.local;
        e.target->get_history(std::move(req), std::move(done));
    }
};

// A feature set added by a live reload: consumed, preprocessed, stored and read by components of
// its own, whose config holds only it (as set 0), until the next start makes it one of the
// daemon's sets. Its consumer joins "<group_id>.<set>" on the broker, a group of its own, so no
// other consumer is rebalanced; its offsets go to PostgreSQL under group_id, where the next
// start's main consumer finds them and goes on exactly where this one stopped. Its tables and
// Redis keys are the ones the set has after that start.
struct added_set : own_pipeline {
    std::uint32_t index = 0;  // in the serving config (`set`, in its own, is 0)
    pipeline_stats stats{1};
    memory_index memory{1};
    std::unique_ptr<aggregator> aggregation;  // null without aggregations
    std::unique_ptr<record_push_validator> validation;
    std::unique_ptr<tiered_reader> reader;
};

// Stops a set added live: fetching, then its queues drained and written, then its group left.
bool stop_added(added_set& a, std::chrono::milliseconds within) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    std::atomic<bool> abort{false};
    if (a.ingest) a.ingest->stop_fetching(within);
    if (a.preprocess) a.preprocess->drain_and_join(abort);
    if (a.writer) a.writer->drain_and_join(abort);
    a.pushes.reset();
    const bool left = a.ingest ? a.ingest->close(std::max(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(2))) : true;
    return left;
}

// The catalog's figures: the daemon's, or those of a set added live.
struct figures_router final : telemetry {
    telemetry* main = nullptr;
    std::uint32_t main_sets = 0;
    const std::vector<std::unique_ptr<added_set>>* added = nullptr;
    std::mutex* added_mutex = nullptr;
    feature_set_figures figures(std::uint32_t set_index) const override {
        if (set_index < main_sets) return main->figures(set_index);
        std::lock_guard lock(*added_mutex);
        for (const auto& a : *added)
            if (a->index == set_index) {
                feature_set_figures f = figures_of(a->stats, 0);
                f.consumer_lag = a->ingest->consumer_lag(0);
                return f;
            }
        return {};
    }
    void observe_request(std::string_view route, std::string_view method, int status, double seconds) override {
        main->observe_request(route, method, status, seconds);
    }
    std::string render_metrics() override { return main->render_metrics(); }
};

struct daemon::impl final : health_source, definition_source, activity_recorder, admin_source, quarantine_source,
                            quality_source {
    explicit impl(const config& c)
        : cfg(c), memory(c.feature_sets.size()), running_(std::shared_ptr<const config>(), &c) {}

    const config& cfg;
    std::shared_ptr<spdlog::logger> log = module_logger(log_module::main);
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
    std::unique_ptr<record_push_validator> push_validation;
    std::unique_ptr<push_source> pushes;
    serve_context serve_ctx;
    std::unique_ptr<training_exports> training;  // with PostgreSQL: POST /v1/training-sets
    http_server_ptr http;
    std::unique_ptr<event_generator> generator;
    std::unique_ptr<definition_registry> registry;
    std::vector<std::unique_ptr<version_pipeline>> versions;  // one per set version >= 2
    std::unique_ptr<version_switch> serving;
    push_router pushes_by_set;
    read_router reads_by_set;
    figures_router figures_by_set;
    std::mutex added_mutex;  // guards `added` against the catalog's figures
    std::vector<std::unique_ptr<added_set>> added;  // sets added by live reloads
    std::string bootstrap;  // the brokers the consumers were given
    std::thread catch_up;
    std::mutex catch_up_mutex;
    std::condition_variable catch_up_cv;
    mutable std::mutex definitions_mutex;
    std::vector<registered_definition> definitions_;  // the registry's newest, for the catalog
    std::atomic<bool> stopping{false};

    // Live reload: the config running now (the start's, then each reload's effective config), the
    // changes still waiting for a restart, and the reloads counted by outcome.
    mutable std::mutex running_mutex;
    std::shared_ptr<const config> running_;
    std::vector<config_change> pending_;
    std::mutex reload_mutex;  // one reload at a time
    std::map<std::string, std::uint64_t> reloads_;  // by outcome, under running_mutex
    std::unique_ptr<activity_log> activity;  // null without PostgreSQL
    std::unique_ptr<quality_monitor> quality;  // null when quality.enabled is false
    std::unique_ptr<quarantine_table> quarantine;  // null without PostgreSQL
    std::atomic<std::uint64_t> releases{0};

    // quality_source
    nlohmann::ordered_json report(std::uint32_t set, std::int64_t from_ms, std::int64_t to_ms) const override {
        return quality ? quality->report(set, from_ms, to_ms) : nlohmann::ordered_json();
    }
    result<quality_gate> gate(std::uint32_t set, std::int64_t from_ms, std::int64_t to_ms) const override {
        if (!quality) return result<quality_gate>::failure("data quality is off");
        return quality->gate(set, from_ms, to_ms);
    }

    // quarantine_source
    result<nlohmann::json> held(std::uint32_t set, bool released, std::int64_t limit) override {
        if (!quarantine || set >= cfg.feature_sets.size())
            return result<nlohmann::json>::failure("no quarantine for this feature set");
        return quarantine->list(cfg.feature_sets[set], released, limit);
    }
    void release(std::uint32_t set, std::vector<std::int64_t> ids, std::string actor,
                 std::function<void(result<nlohmann::json>)> done) override;

    // activity_recorder
    void record(activity_event e) override {
        if (activity) activity->record(std::move(e));
    }
    void auth_failure(const std::string& client, const std::string& route, const std::string& reason,
                      const std::string& request_id) override {
        if (activity) activity->auth_failure(client, route, reason, request_id);
    }
    result<activity_page> query(const activity_query& q) override {
        if (!activity) return result<activity_page>::failure("no activity log without PostgreSQL");
        return activity->query(q);
    }

    // admin_source
    std::shared_ptr<const config> running() const override {
        std::lock_guard lock(running_mutex);
        return running_;
    }
    std::vector<config_change> pending_restart() const override {
        std::lock_guard lock(running_mutex);
        return pending_;
    }
    void reload(std::string actor, std::string request_id, std::function<void(reload_outcome)> done) override {
        // Off the io thread: it reads a file and rebuilds the parsers.
        auto work = [this, actor = std::move(actor), request_id = std::move(request_id), done = std::move(done)] {
            done(reload_now(actor, request_id));
        };
        if (!lookups || !lookups->submit(work)) work();
    }

    reload_outcome reload_now(const std::string& actor, const std::string& request_id);
    result<std::unique_ptr<added_set>> start_added_set(const config& next, std::uint32_t index);
    status record_in_registry(const config& next);
    void apply(const std::shared_ptr<const config>& next, const reload_plan& plan);
    void append_metrics(std::string& out) const;

    // A registry transition or a definition change, for the activity log.
    void record_definitions(const definition_plan& plan) {
        for (const auto& p : plan.sets) {
            if (p.action == plan_action::unchanged) continue;
            activity_event e;
            e.action = "definition";
            e.target = p.set + "@" + std::to_string(p.version);
            e.outcome = to_string(p.action);
            nlohmann::json changes = nlohmann::json::array();
            for (const auto& c : p.changes) changes.push_back(c.subject + ": " + c.change);
            e.detail = {{"changes", changes}, {"note", p.note}, {"environment", cfg.environment}};
            record(std::move(e));
        }
    }

    std::vector<registered_definition> definitions() const override {
        std::lock_guard lock(definitions_mutex);
        return definitions_;
    }

    kafka_ingest* ingest_of(std::uint32_t set) const {
        for (const auto& v : versions)
            if (v->set == set) return v->ingest.get();
        return ingest.get();
    }

    bool version_live_in_registry(std::uint32_t set) {
        const auto& s = cfg.feature_sets[set];
        std::lock_guard lock(definitions_mutex);
        for (const auto& d : definitions_)
            if (d.set == s.name && d.version == s.version) return d.state == definition_state::live;
        return false;
    }

    // Starts the pipeline of one version >= 2 (see version_pipeline).
    status start_version(std::uint32_t set, const std::string& brokers, aggregation_state* aggregation) {
        auto v = std::make_unique<version_pipeline>();
        v->set = set;
        v->cfg = own_pipeline::narrowed(cfg);
        v->cfg->kafka.group_id = cfg.kafka.group_id + "." + cfg.feature_sets[set].storage_name();
        if (auto s = v->start(brokers, memory, aggregation, stats, dead_letter_topic.get(), quality.get()); !s) return s;
        log->info("{}: version {} runs in consumer group {}{}", cfg.feature_sets[set].name, cfg.feature_sets[set].version,
                  v->cfg->kafka.group_id, version_live_in_registry(set) ? "" : ", backfilling from the topic's start");
        versions.push_back(std::move(v));
        return status::success();
    }

    // A version's backfill has caught up when its consumer is within a batch of the live
    // version's (or of the topic's end, with no older version running): it then serves the
    // set's name, and the registry records it live.
    void watch_backfills() {
        std::unique_lock lock(catch_up_mutex);
        while (!stopping.load()) {
            catch_up_cv.wait_for(lock, std::chrono::milliseconds(200));
            if (stopping.load()) break;
            for (const auto& v : versions) {
                measure(*v);
                if (v->live) continue;
                const auto& set = cfg.feature_sets[v->set];
                const std::int64_t lag = v->ingest->durable_lag(v->set);
                if (lag < 0) continue;  // nothing durable yet, or the ends are unknown
                std::int64_t live_lag = 0;
                for (std::uint32_t s = 0; s < cfg.feature_sets.size(); ++s)
                    if (s != v->set && cfg.feature_sets[s].name == set.name && serving->live(s))
                        live_lag = std::max<std::int64_t>(live_lag, ingest_of(s)->durable_lag(s));
                if (lag > live_lag + cfg.pipeline.batch_max_records) continue;
                if (registry) {
                    if (auto st = registry->set_state(set.name, set.version, definition_state::live); !st) {
                        log->warn("{}: backfill caught up, but the registry could not record it: {}", set.versioned_name(),
                                  st.message());
                        continue;
                    }
                    refresh_definitions();
                    activity_event e;
                    e.action = "definition";
                    e.target = set.versioned_name();
                    e.outcome = "live";
                    e.detail = {{"from", "backfilling"}, {"behind", lag}};
                    record(std::move(e));
                }
                v->live = true;
                serving->set_live(v->set, true);
                measure(*v);
                log->info("{}: backfill caught up ({} messages behind the end); reads of {} now go to version {}{}",
                          set.versioned_name(), lag, set.name, set.version,
                          serving->resolve(set.name) == static_cast<int>(v->set) ? "" : " unless another is pinned");
            }
        }
    }

    std::optional<backfill_progress> backfill(std::uint32_t set_index) const override {
        for (const auto& v : versions)
            if (v->set == set_index) {
                std::lock_guard lock(v->progress_mutex);
                return v->progress;
            }
        return std::nullopt;
    }

    // The watcher's figures for one version: done and to do from its durable offsets, the rate
    // between two looks (smoothed), the time left at that rate.
    void measure(version_pipeline& v) {
        const auto p = v.ingest->durable_progress(v.set);
        if (p.behind < 0) return;
        const auto now = std::chrono::steady_clock::now();
        std::lock_guard lock(v.progress_mutex);
        backfill_progress b = v.progress.value_or(backfill_progress{});
        if (v.last_done >= 0) {
            const double seconds = std::chrono::duration<double>(now - v.last_at).count();
            const double rate = seconds > 0 ? static_cast<double>(p.done - v.last_done) / seconds : 0;
            b.rate = b.rate > 0 ? 0.7 * b.rate + 0.3 * rate : rate;
        }
        v.last_done = p.done;
        v.last_at = now;
        b.state = v.live ? definition_state::live : definition_state::backfilling;
        b.done = p.done;
        b.to_do = p.behind;
        b.eta_s = b.rate > 0 ? static_cast<double>(p.behind) / b.rate : (p.behind == 0 ? 0 : -1);
        v.progress = b;
    }

    void refresh_definitions() {
        auto snap = registry->read();
        if (!snap) {
            log->warn("reading the registry: {}", snap.message());
            return;
        }
        std::lock_guard lock(definitions_mutex);
        definitions_ = std::move(snap.value().definitions);
    }

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
        bool assigned = ingest && ingest->has_assignment();
        for (const auto& v : versions) assigned = assigned || v->ingest->has_assignment();
        if (!assigned) reasons.emplace_back("kafka: no partitions assigned yet");
        return reasons;
    }

    std::vector<std::string> readiness_notes() const override {
        std::vector<std::string> notes;
        if (!activity) return notes;
        const auto f = activity->figures();
        if (f.buffered > 0 || f.dropped > 0 || !f.last_error.empty())
            notes.push_back("activity log: " + std::to_string(f.buffered) + " rows waiting for PostgreSQL, " +
                            std::to_string(f.dropped) + " dropped since start" +
                            (f.last_error.empty() ? std::string() : " (" + f.last_error + ")"));
        return notes;
    }
};

// Reads the config file again, and applies what can change live (sluice/config/reload.hpp).
reload_outcome daemon::impl::reload_now(const std::string& actor, const std::string& request_id) {
    std::lock_guard serial(reload_mutex);
    const auto before = running();
    if (stopping.load()) {
        reload_outcome refused;
        refused.outcome = "refused";
        refused.reason = "the daemon is stopping";
        return refused;
    }
    reload_outcome out;
    out.path = before->origin.path;
    out.sha256_before = before->origin.sha256;
    const auto finish = [&] {
        {
            std::lock_guard lock(running_mutex);
            ++reloads_[out.outcome];
        }
        std::string changes;
        for (const auto& c : out.changes)
            changes += (changes.empty() ? "" : "; ") + c.path + " " + c.change + " (" + to_string(c.applied) + ")";
        if (out.ok())
            log->info("config reload ({}): {}{}{}", actor, out.outcome, changes.empty() ? "" : ": ", changes);
        else
            log->error("config reload ({}) refused, the running config keeps running: {}", actor, out.reason);
        activity_event e;
        e.actor = actor;
        e.action = "reload";
        e.target = out.path;
        e.outcome = out.outcome;
        e.request_id = request_id;
        e.detail = out.json();
        e.detail.erase("config");
        e.detail["sha256_before"] = out.sha256_before;
        e.detail["sha256_after"] = out.sha256_after;
        record(std::move(e));
        return out;
    };
    if (out.path.empty()) {
        out.outcome = "refused";
        out.reason = "the daemon was not started from a config file";
        return finish();
    }
    auto loaded = load_config_file(out.path);
    out.sha256_after = loaded.cfg.origin.sha256;
    if (!loaded.ok()) {
        out.outcome = "refused";
        out.errors = loaded.errors;
        out.reason = std::to_string(loaded.errors.size()) + " error(s) in " + out.path + ": " +
                     format_errors(loaded.errors);
        while (!out.reason.empty() && out.reason.back() == '\n') out.reason.pop_back();
        return finish();
    }
    reload_plan plan = plan_reload(*before, loaded.cfg);
    out.changes = plan.changes;
    if (plan.breaking()) {
        out.outcome = "refused";
        for (const auto& c : plan.changes)
            if (c.applied == change_class::breaking)
                out.reason += (out.reason.empty() ? "breaking: " : "; ") + c.path + " " + c.change + " (" + c.note + ")";
        return finish();
    }
    auto next = std::make_shared<const config>(std::move(plan.effective));
    // Sets added: their tables, registry rows and pipelines first; any failure refuses the whole
    // reload before anything serving has changed.
    std::vector<std::unique_ptr<added_set>> fresh;
    const auto known = static_cast<std::uint32_t>(before->feature_sets.size());
    if (next->feature_sets != before->feature_sets) {
        if (auto st = record_in_registry(*next); !st) {
            out.outcome = "refused";
            out.reason = "the registry: " + st.message();
            return finish();
        }
    }
    for (std::uint32_t s = known; s < next->feature_sets.size(); ++s) {
        auto a = start_added_set(*next, s);
        if (!a) {
            for (auto& f : fresh) stop_added(*f, std::chrono::seconds(5));
            out.outcome = "refused";
            out.reason = "feature set " + next->feature_sets[s].name + " could not start: " + a.message();
            return finish();
        }
        fresh.push_back(std::move(a.value()));
    }
    for (auto& a : fresh) {
        pushes_by_set.by_set.append({a->pushes.get(), 0});
        reads_by_set.by_set.append({a->reader.get(), 0});
        std::lock_guard lock(added_mutex);
        added.push_back(std::move(a));
    }
    apply(next, plan);
    const auto pending = plan.pending_restart();
    out.outcome = plan.changes.empty() ? "unchanged" : pending.empty() ? "applied" : "applied_pending_restart";
    out.reason = plan.changes.empty() ? "the file changes nothing"
                 : pending.empty()    ? std::to_string(plan.changes.size()) + " change(s) applied"
                                      : std::to_string(plan.changes.size() - pending.size()) + " change(s) applied, " +
                                         std::to_string(pending.size()) + " wait for a restart";
    return finish();
}

// The registry's check and record for a reload's config: the same rules as at start (another
// environment's schema and breaking changes refused), and a revision for each set it changes.
status daemon::impl::record_in_registry(const config& next) {
    if (!registry) return status::success();
    definition_registry r(next);
    auto plan = r.check_before_start();
    if (!plan) return plan.as_status();
    // The tables of sets added live are made by their own stores (start_added_set) before reads.
    for (std::uint32_t s = static_cast<std::uint32_t>(cfg.feature_sets.size()); s < next.feature_sets.size(); ++s) {
        config only = next;
        only.feature_sets = {next.feature_sets[s]};
        if (auto st = make_postgres_store(only)->prepare(); !st) return st;
    }
    if (auto st = r.record(plan.value()); !st) return st;
    refresh_definitions();
    record_definitions(plan.value());
    return status::success();
}

// The pipeline of one set added live (see added_set), started and consuming.
result<std::unique_ptr<added_set>> daemon::impl::start_added_set(const config& next, std::uint32_t index) {
    using R = result<std::unique_ptr<added_set>>;
    auto a = std::make_unique<added_set>();
    a->index = index;
    a->cfg = own_pipeline::narrowed(next);
    config& c = *a->cfg;
    const feature_set_config set = next.feature_sets[index];
    c.feature_sets = {set};
    c.kafka.membership_group = next.kafka.group_id + "." + set.storage_name();
    if (c.postgres) {
        a->durable = make_postgres_store(c);
        if (auto st = a->durable->prepare(); !st) return R::failure(st.message());
    }
    std::vector<aggregator*> own_aggregator{nullptr};
    if (!set.aggregations.empty()) {
        a->aggregation = std::make_unique<aggregator>(c.feature_sets[0]);
        own_aggregator[0] = a->aggregation.get();
        if (a->durable) {
            auto rows = rebuild_from_history(*a->aggregation, *a->durable, 0, c.feature_sets[0]);
            if (!rows) return R::failure(rows.message());
        }
    }
    if (auto st = a->start(bootstrap, a->memory, a->aggregation.get(), a->stats, dead_letter_topic.get()); !st) {
        stop_added(*a, std::chrono::seconds(5));
        return R::failure(st.message());
    }
    added_set& p = *a;
    a->reader = std::make_unique<tiered_reader>(c, a->memory, a->cache.get(), a->durable.get(), *lookups, lookup_backlog,
                                                own_aggregator, nullptr);
    a->reader->set_owner([&p](const std::string& topic, std::int32_t partition) {
        return p.ingest->owns(topic, partition) && !p.writer->catching_up(topic, partition);
    });
    a->validation = std::make_unique<record_push_validator>(c);
    a->pushes = std::make_unique<push_source>(c, *a->validation, *a->writer, *lookups);
    log->info("{}: added by a live reload; consumer group {} (offsets kept under {})", set.name, c.kafka.membership_group,
              c.kafka.group_id);
    return a;
}

// Claims the rows, writes them through the set's push path with the quarantine as their source,
// then confirms them (or gives them back if the write failed): see sluice/store/quarantine.hpp.
void daemon::impl::release(std::uint32_t set, std::vector<std::int64_t> ids, std::string actor,
                           std::function<void(result<nlohmann::json>)> done) {
    using R = result<nlohmann::json>;
    auto work = [this, set, ids = std::move(ids), actor = std::move(actor), done = std::move(done)]() mutable {
        if (!quarantine || set >= cfg.feature_sets.size() || stopping.load())
            return done(R::failure("the quarantine of this feature set cannot be released now"));
        const auto& fs = cfg.feature_sets[set];
        const std::string token = fs.display_name() + "/" + std::to_string(now_ms()) + "/" + std::to_string(++releases);
        auto rows = quarantine->claim(fs, ids, token, 1000);
        if (!rows) return done(R::failure("claiming the rows: " + rows.message()));
        std::vector<std::int64_t> claimed;
        for (const auto& r : rows.value()) claimed.push_back(r.first);
        if (claimed.empty()) return done(nlohmann::json{{"released", 0}, {"ids", claimed}, {"errors", nlohmann::json::array()}});
        push_source* target = pushes.get();
        for (const auto& v : versions)
            if (v->set == set) target = v->pushes.get();
        target->release(set, std::move(rows.value()), [this, token, actor, claimed, done, name = fs.display_name()](
                                                          result<push_outcome> r) mutable {
            // Off the writer's thread: the confirmation is a PostgreSQL statement.
            auto confirm = [this, token, actor, claimed, done, name, r = std::move(r)]() mutable {
                if (!r) {
                    (void)quarantine->unclaim(token);
                    return done(R::failure("the records were not written, and are held again: " + r.message()));
                }
                // Durable (or a dead letter now, if they break the schema): out of the quarantine.
                if (auto st = quarantine->confirm(token, actor); !st)
                    log->warn("quarantine release {}: written, but not yet marked released ({}); the next release "
                              "settles it",
                              token, st.message());
                nlohmann::json errors = nlohmann::json::array();
                for (const auto& [index, error] : r.value().errors) errors.push_back({{"id", claimed[index]}, {"error", error}});
                activity_event e;
                e.actor = actor;
                e.action = "quarantine_release";
                e.target = name;
                e.detail = {{"released", claimed.size()}, {"accepted", r.value().accepted}, {"rejected", r.value().errors.size()}};
                record(std::move(e));
                done(nlohmann::json{{"released", claimed.size()},
                                    {"accepted", r.value().accepted},
                                    {"ids", claimed},
                                    {"errors", std::move(errors)}});
            };
            if (!lookups || !lookups->submit(confirm)) confirm();
        });
    };
    if (!lookups || !lookups->submit(work)) work();
}

// Puts a reload's config in place: every part that reads it takes the new one from its next
// request, batch or message; what the old one was serving finishes with it.
void daemon::impl::apply(const std::shared_ptr<const config>& next, const reload_plan& plan) {
    reconfigure_logging(next->log);
    if (preprocess) preprocess->reconfigure(next);
    for (const auto& v : versions) v->preprocess->reconfigure(next);
    if (push_validation) push_validation->reconfigure(next);
    if (quality) quality->reconfigure(next);
    for (std::uint32_t s = 0; s < next->feature_sets.size(); ++s) {
        if (cache) cache->set_ttl(s, next->feature_sets[s].ttl_ms);
        for (const auto& v : versions)
            if (v->cache) v->cache->set_ttl(s, next->feature_sets[s].ttl_ms);
    }
    {
        std::lock_guard lock(added_mutex);
        for (const auto& a : added) {
            // Its own config holds only it: the reload's version of the set, as set 0.
            auto own = std::make_shared<config>(*a->cfg);
            own->feature_sets = {next->feature_sets[a->index]};
            own->log = next->log;
            a->preprocess->reconfigure(own);
            a->validation->reconfigure(own);
            if (a->cache) a->cache->set_ttl(0, next->feature_sets[a->index].ttl_ms);
        }
    }
    if (http) http->reconfigure(next);
    std::lock_guard lock(running_mutex);
    running_ = next;
    pending_.clear();
    for (const auto& c : plan.changes)
        if (c.applied == change_class::restart) pending_.push_back(c);
}

// Families of the daemon's own: reloads by outcome, the running config, the activity log.
void daemon::impl::append_metrics(std::string& out) const {
    const std::string env = "environment=\"" + cfg.environment + "\"";
    std::map<std::string, std::uint64_t> reloads;
    std::shared_ptr<const config> now;
    {
        std::lock_guard lock(running_mutex);
        reloads = reloads_;
        now = running_;
    }
    out += "# HELP sluice_config_reloads_total Config reloads (SIGHUP or POST /v1/admin/reload) by outcome\n"
           "# TYPE sluice_config_reloads_total counter\n";
    for (const char* outcome : {"applied", "applied_pending_restart", "unchanged", "refused"})
        out += "sluice_config_reloads_total{" + env + ",outcome=\"" + outcome + "\"} " +
               std::to_string(reloads.count(outcome) ? reloads.at(outcome) : 0) + "\n";
    out += "# HELP sluice_config_info Always 1; the running config file's SHA-256 in a label\n"
           "# TYPE sluice_config_info gauge\n"
           "sluice_config_info{" + env + ",sha256=\"" + now->origin.sha256 + "\"} 1\n"
           "# HELP sluice_config_loaded_timestamp_seconds When the running config was loaded\n"
           "# TYPE sluice_config_loaded_timestamp_seconds gauge\n"
           "sluice_config_loaded_timestamp_seconds{" + env + "} " +
           std::to_string(static_cast<double>(now->origin.loaded_at_ms) / 1000.0) + "\n";
    if (quality) quality->append_metrics(out, env);
    if (!activity) return;
    const auto f = activity->figures();
    out += "# HELP sluice_activity_rows_total Activity log rows: recorded, written to PostgreSQL, dropped (the "
           "buffer was full during an outage), pruned (retention)\n"
           "# TYPE sluice_activity_rows_total counter\n";
    for (const auto& [what, n] : {std::pair{"recorded", f.recorded}, std::pair{"written", f.written},
                                  std::pair{"dropped", f.dropped}, std::pair{"pruned", f.pruned}})
        out += "sluice_activity_rows_total{" + env + ",outcome=\"" + what + "\"} " + std::to_string(n) + "\n";
    out += "# HELP sluice_activity_rows_buffered Activity log rows waiting to be written\n"
           "# TYPE sluice_activity_rows_buffered gauge\n"
           "sluice_activity_rows_buffered{" + env + "} " + std::to_string(f.buffered) + "\n";
}

daemon::daemon(const config& cfg) : impl_(std::make_unique<impl>(cfg)) {}

daemon::~daemon() {
    if (impl_->writer || impl_->ingest || impl_->http) stop();
}

status daemon::start() {
    auto& d = *impl_;
    const auto& cfg = d.cfg;
    if (cfg.postgres) {
        // The definitions first: another environment's schema, or a breaking change without a new
        // version, stops the start before any table is touched.
        d.registry = std::make_unique<definition_registry>(cfg);
        auto plan = d.registry->check_before_start();
        if (!plan) return plan.as_status();
        for (const auto& p : plan.value().sets)
            if (p.action != plan_action::unchanged)
                d.log->info("definition {}@{}: {}{}{}", p.set, p.version, to_string(p.action), p.note.empty() ? "" : ": ",
                            p.note);
        d.durable = make_postgres_store(cfg);
        if (auto s = d.durable->prepare(); !s) return s;
        if (auto s = d.registry->record(plan.value()); !s) return status::failure("recording the definitions: " + s.message());
        d.refresh_definitions();
        // The activity log: its rows wait in memory while PostgreSQL is away, so only making the
        // table may stop the start.
        d.activity = std::make_unique<activity_log>(*cfg.postgres, cfg.activity);
        if (auto s = d.activity->prepare(); !s) return status::failure("the activity log: " + s.message());
        d.activity->start();
        activity_event started;
        started.action = "start";
        started.target = cfg.origin.path.empty() ? "sluice" : cfg.origin.path;
        started.detail = {{"version", SLUICE_VERSION},
                          {"config_sha256", cfg.origin.sha256},
                          {"environment", cfg.environment},
                          {"feature_sets", cfg.feature_sets.size()}};
        d.record(std::move(started));
        d.record_definitions(plan.value());
        d.quarantine = std::make_unique<quarantine_table>(*cfg.postgres);
    }
    if (cfg.redis) {
        d.cache = make_redis_cache(cfg);
        // Redis may come later: the writer keeps trying and reads fall back meanwhile. Another
        // environment's prefix stops the start.
        if (auto s = d.cache->ping(); !s) {
            if (s.kind() == error_kind::permanent) return s;
            d.log->warn("{}", s.message());
        }
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
    d.bootstrap = bootstrap;
    d.ingest = std::make_unique<kafka_ingest>(cfg, bootstrap, raw, d.durable.get());
    std::vector<std::uint32_t> main_sets;
    for (std::uint32_t s = 0; s < cfg.feature_sets.size(); ++s)
        if (cfg.feature_sets[s].version == 1) main_sets.push_back(s);
    // A config of versions >= 2 only still needs its main consumer to exist: it then consumes
    // nothing of its own.
    d.ingest->consume_only(main_sets.empty() ? std::vector<std::uint32_t>{static_cast<std::uint32_t>(cfg.feature_sets.size())}
                                             : main_sets);
    // A revoked partition's keys now belong to another instance: drop our copies before they go stale.
    d.ingest->on_revoke([&d](const std::vector<partition_offset>& revoked) {
        for (std::uint32_t set = 0; set < d.cfg.feature_sets.size(); ++set) {
            if (!d.ingest->consumes(set)) continue;
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
    // Aggregation state: rebuilt from history, so it equals what it was before a restart or crash.
    std::vector<aggregator*> aggregator_ptrs;
    std::vector<aggregation_state*> aggregation_ports;
    for (std::uint32_t s = 0; s < cfg.feature_sets.size(); ++s) {
        const auto& set = cfg.feature_sets[s];
        if (set.aggregations.empty()) {
            d.aggregators.emplace_back();
            aggregator_ptrs.push_back(nullptr);
            aggregation_ports.push_back(nullptr);
            continue;
        }
        d.aggregators.push_back(std::make_unique<aggregator>(set));
        aggregator_ptrs.push_back(d.aggregators.back().get());
        aggregation_ports.push_back(d.aggregators.back().get());
        if (!d.durable) continue;
        const auto started = std::chrono::steady_clock::now();
        auto rows = rebuild_from_history(*d.aggregators.back(), *d.durable, s, set);
        if (!rows) return status::failure(rows.message());
        d.log->info("{}: aggregation state rebuilt from {} history rows ({} keys) in {} ms", set.name, rows.value(),
                    d.aggregators.back()->keys(),
                    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
    }
    std::vector<aggregation_state*> main_ports = aggregation_ports;
    for (std::uint32_t s = 0; s < cfg.feature_sets.size(); ++s)
        if (!d.ingest->consumes(s)) main_ports[s] = nullptr;
    d.writer->set_aggregators(main_ports);
    d.writer->set_stats(&d.stats);
    if (cfg.quality.enabled) {
        d.quality = std::make_unique<quality_monitor>(cfg, &d.stats);
        if (auto s = d.quality->prepare(); !s) return s;
        d.quality->on_change([&d](const std::string& set, const expectation_result& r, std::int64_t window_start) {
            activity_event e;
            e.action = "expectation";
            e.target = set + " " + r.id;
            e.outcome = r.passed ? "passing" : "failing";
            e.detail = {{"description", r.description}, {"observed", r.observed}, {"note", r.note},
                        {"window_start", format_rfc3339_ms(window_start)}};
            d.record(std::move(e));
        });
        d.quality->start();
        d.writer->set_quality(d.quality.get());
    }
    d.writer->start();
    d.preprocess->start();
    if (auto s = d.ingest->start(); !s) return s;

    for (std::uint32_t s = 0; s < cfg.feature_sets.size(); ++s)
        if (cfg.feature_sets[s].version != 1)
            if (auto st = d.start_version(s, bootstrap, aggregation_ports[s]); !st) return st;

    d.lookups = std::make_unique<lookup_pool>(cfg.http.lookup_threads, lookup_backlog);
    auto redis_io = d.cache && cfg.redis ? std::make_unique<redis_io_reader>(cfg) : nullptr;
    d.reader = std::make_unique<tiered_reader>(cfg, d.memory, d.cache.get(), d.durable.get(), *d.lookups, lookup_backlog,
                                               aggregator_ptrs, std::move(redis_io));
    telemetry_sources sources;
    sources.consumer_lag = [&d](std::uint32_t set) {
        if (kafka_ingest* in = d.ingest_of(set)) return in->consumer_lag(set);
        return std::int64_t{-1};
    };
    sources.messages_consumed = [&d] {
        std::uint64_t n = d.ingest ? d.ingest->messages_consumed() : 0;
        for (const auto& v : d.versions) n += v->ingest->messages_consumed();
        return n;
    };
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
    sources.more_metrics = [&d](std::string& out) { d.append_metrics(out); };
    // The aggregation state of a partition is served once it is this instance's and caught up.
    // (Versions of one set share its topic: a partition counts as this instance's when any of
    // its consumer groups holds it here.)
    d.reader->set_owner([&d](const std::string& topic, std::int32_t partition) {
        if (d.ingest && d.ingest->owns(topic, partition) && !(d.writer && d.writer->catching_up(topic, partition)))
            return true;
        for (const auto& v : d.versions)
            if (v->ingest->owns(topic, partition) && !v->writer->catching_up(topic, partition)) return true;
        return false;
    });
    d.metrics = std::make_unique<prometheus_telemetry>(cfg, d.stats, std::move(sources));
    d.push_validation = std::make_unique<record_push_validator>(cfg);
    d.pushes = std::make_unique<push_source>(cfg, *d.push_validation, *d.writer, *d.lookups);
    std::vector<index_table<ingest_sink>::entry> push_targets;
    std::vector<index_table<tiered_reader>::entry> read_targets;
    for (std::uint32_t s = 0; s < cfg.feature_sets.size(); ++s) {
        push_targets.push_back({d.pushes.get(), s});
        read_targets.push_back({d.reader.get(), s});
    }
    for (const auto& v : d.versions) {
        v->pushes = std::make_unique<push_source>(*v->cfg, *d.push_validation, *v->writer, *d.lookups);
        push_targets[v->set] = {v->pushes.get(), v->set};
    }
    d.pushes_by_set.by_set.assign(std::move(push_targets));
    d.reads_by_set.by_set.assign(std::move(read_targets));
    d.figures_by_set.main = d.metrics.get();
    d.figures_by_set.main_sets = static_cast<std::uint32_t>(cfg.feature_sets.size());
    d.figures_by_set.added = &d.added;
    d.figures_by_set.added_mutex = &d.added_mutex;
    d.serving = std::make_unique<version_switch>(cfg);
    for (const auto& v : d.versions) d.serving->set_live(v->set, d.version_live_in_registry(v->set));
    for (const auto& v : d.versions) v->live = d.serving->live(v->set);
    d.serve_ctx.versions = d.serving.get();
    d.serve_ctx.cfg = &cfg;
    d.serve_ctx.reader = &d.reads_by_set;
    d.serve_ctx.health = &d;
    d.serve_ctx.history = &d.reads_by_set;
    d.serve_ctx.ingest = &d.pushes_by_set;
    d.serve_ctx.metrics = &d.figures_by_set;
    if (d.registry) d.serve_ctx.definitions = &d;
    if (d.activity) d.serve_ctx.activity = &d;
    d.serve_ctx.admin = &d;
    if (d.quality) d.serve_ctx.quality = &d;
    if (d.quarantine) d.serve_ctx.quarantine = &d;
    d.serve_ctx.lookups = d.lookups.get();
    if (cfg.postgres) {
        d.training = std::make_unique<training_exports>(cfg.postgres->dsn, d.activity ? &d : nullptr);
        d.serve_ctx.training = d.training.get();
    }
    d.http = make_http_server(d.serve_ctx);
    if (auto s = d.http->start(); !s) return s;

    if (!d.versions.empty()) d.catch_up = std::thread([&d] { d.watch_backfills(); });

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
    { std::lock_guard wait_for_reload(d.reload_mutex); }  // a reload under way finishes first
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
    if (d.catch_up.joinable()) {
        {
            std::lock_guard lock(d.catch_up_mutex);
        }
        d.catch_up_cv.notify_all();
        d.catch_up.join();
    }
    const auto left = [&] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    };
    if (d.ingest) d.ingest->stop_fetching(left());
    for (const auto& v : d.versions) v->ingest->stop_fetching(left());
    for (const auto& a : d.added) a->ingest->stop_fetching(left());
    if (d.preprocess) d.preprocess->drain_and_join(abort);
    for (const auto& v : d.versions) v->preprocess->drain_and_join(abort);
    if (d.writer) d.writer->drain_and_join(abort);
    for (const auto& v : d.versions) v->writer->drain_and_join(abort);
    for (const auto& a : d.added) {
        a->preprocess->drain_and_join(abort);
        a->writer->drain_and_join(abort);
    }
    bool complete = !abort.load();
    finished.store(true);
    watchdog.join();
    // Serving ends before the consumers close: the API reads their positions for /metrics.
    if (d.http) d.http->stop();
    if (d.training) d.training->stop();  // the server closed their connections: they end now
    if (d.lookups) d.lookups->stop();
    d.pushes.reset();
    for (const auto& v : d.versions) v->pushes.reset();
    for (const auto& a : d.added) a->pushes.reset();
    // Commits the stored offsets to Kafka and leaves the group, within what is left of the
    // deadline but at least close_grace: a broker that is up answers in milliseconds.
    constexpr auto close_grace = std::chrono::seconds(2);
    bool left_group = true;
    if (d.ingest) left_group = d.ingest->close(std::max(deadline, std::chrono::steady_clock::now() + close_grace));
    for (const auto& v : d.versions)
        left_group = v->ingest->close(std::max(deadline, std::chrono::steady_clock::now() + close_grace)) && left_group;
    for (const auto& a : d.added)
        left_group = a->ingest->close(std::max(deadline, std::chrono::steady_clock::now() + close_grace)) && left_group;
    d.left_threads = !left_group;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    if (d.writer)
        d.log->info("stopped in {} ms: {} records and {} dead letters written since start{}{}", ms.count(),
                    d.writer->records_written(), d.writer->dead_letters_written(),
                    complete ? "" : "; shutdown timed out, unwritten records will be consumed again",
                    left_group ? "" : "; the Kafka group was not left (broker unreachable)");
    complete = complete && left_group;
    d.http.reset();
    if (d.quality) d.quality->stop();  // the open windows, written as partial
    if (d.activity) {
        activity_event e;
        e.action = "stop";
        e.target = d.cfg.origin.path.empty() ? "sluice" : d.cfg.origin.path;
        e.outcome = complete ? "ok" : "incomplete";
        e.detail = {{"version", SLUICE_VERSION}, {"config_sha256", d.running()->origin.sha256}};
        d.record(std::move(e));
        // What PostgreSQL has not taken yet waits at most a few seconds more.
        if (!d.activity->stop(std::chrono::seconds(5)))
            d.log->warn("stopped with {} activity rows unwritten (PostgreSQL did not take them)", d.activity->figures().buffered);
    }
    for (auto& a : d.added) {
        a->ingest.reset();
        a->writer.reset();
        a->preprocess.reset();
    }
    for (auto& v : d.versions) {
        v->ingest.reset();
        v->writer.reset();
        v->preprocess.reset();
    }
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

reload_outcome daemon::reload(const std::string& actor, const std::string& request_id) {
    return impl_->reload_now(actor, request_id);
}

}  // namespace sluice
