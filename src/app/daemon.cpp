#include "sluice/app/daemon.hpp"

#include <algorithm>
#include <mutex>

#include <spdlog/spdlog.h>

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
#include "sluice/serve/http_server.hpp"
#include "sluice/serve/prometheus_telemetry.hpp"
#include "sluice/store/memory_index.hpp"
#include "sluice/store/postgres_store.hpp"
#include "sluice/store/redis_cache.hpp"
#include "sluice/store/redis_io_reader.hpp"
#include "sluice/store/registry.hpp"
#include "sluice/store/store_writer.hpp"

namespace sluice {

namespace {

constexpr std::size_t lookup_backlog = 10000;
constexpr std::int64_t write_stall_ms = 5000;  // a write waiting longer makes /readyz 503

}  // namespace

struct daemon::impl final : health_source {
    explicit impl(const config& c) : cfg(c), memory(c.feature_sets.size()) {}

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
    http_server_ptr http;
    std::unique_ptr<event_generator> generator;
    std::unique_ptr<definition_registry> registry;
    std::mutex definitions_mutex;
    std::vector<registered_definition> definitions;  // the registry's newest, for the catalog
    std::atomic<bool> stopping{false};

    void refresh_definitions() {
        auto snap = registry->read();
        if (!snap) {
            log->warn("reading the registry: {}", snap.message());
            return;
        }
        std::lock_guard lock(definitions_mutex);
        definitions = std::move(snap.value().definitions);
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
    d.writer->set_aggregators(aggregation_ports);
    d.writer->set_stats(&d.stats);
    d.writer->start();
    d.preprocess->start();
    if (auto s = d.ingest->start(); !s) return s;

    d.lookups = std::make_unique<lookup_pool>(cfg.http.lookup_threads, lookup_backlog);
    auto redis_io = d.cache && cfg.redis ? std::make_unique<redis_io_reader>(cfg) : nullptr;
    d.reader = std::make_unique<tiered_reader>(cfg, d.memory, d.cache.get(), d.durable.get(), *d.lookups, lookup_backlog,
                                               aggregator_ptrs, std::move(redis_io));
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
    d.push_validation = std::make_unique<record_push_validator>(cfg);
    d.pushes = std::make_unique<push_source>(cfg, *d.push_validation, *d.writer, *d.lookups);
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
