#include "sluice/serve/prometheus_telemetry.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <array>
#include <atomic>
#include <unordered_map>
#include <vector>

#include "sluice/core/clock.hpp"
#include "sluice/core/stage_trace.hpp"

namespace sluice {

namespace {

// Request latency buckets: from 100 µs (a memory hit) to 10 s (a stalled store).
const prometheus::Histogram::BucketBoundaries& latency_buckets() {
    static const prometheus::Histogram::BucketBoundaries b = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                              0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                                                              5,      10};
    return b;
}

// A counter that mirrors a cumulative atomic: each scrape adds what the atomic grew by.
struct mirrored_counter {
    prometheus::Counter* counter = nullptr;
    std::uint64_t seen = 0;
    void sync(std::uint64_t now) {
        if (now > seen) counter->Increment(static_cast<double>(now - seen));
        seen = now;
    }
};

// A stage_trace histogram mirrored into a prometheus-cpp one: what came since the last scrape.
struct mirrored_stage {
    prometheus::Histogram* histogram = nullptr;
    std::array<std::uint64_t, stage_trace::buckets> seen{};
    std::uint64_t seen_sum_us = 0;
    void sync(const stage_trace& trace, trace_stage stage) {
        std::vector<double> increments(stage_trace::buckets);
        bool any = false;
        for (std::size_t b = 0; b < stage_trace::buckets; ++b) {
            const auto now = trace.count(stage, b);
            increments[b] = static_cast<double>(now - seen[b]);
            any = any || now != seen[b];
            seen[b] = now;
        }
        const auto sum = trace.sum_us(stage);
        if (any) histogram->ObserveMultiple(increments, static_cast<double>(sum - seen_sum_us) / 1e6);
        seen_sum_us = sum;
    }
};

const prometheus::Histogram::BucketBoundaries& stage_buckets() {
    static const prometheus::Histogram::BucketBoundaries b(stage_trace::bounds.begin(), stage_trace::bounds.end());
    return b;
}

}  // namespace

struct prometheus_telemetry::impl {
    impl(const config& c, const pipeline_stats& s, telemetry_sources src)
        : cfg(c),
          stats(s),
          sources(std::move(src)),
          registry(std::make_shared<prometheus::Registry>()),
          requests(prometheus::BuildCounter()
                       .Name("sluice_http_requests_total")
                       .Help("HTTP requests answered, by route pattern, method and status")
                       .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          durations(prometheus::BuildHistogram()
                        .Name("sluice_http_request_duration_seconds")
                        .Help("Time from a request's arrival to its answer, by route pattern and method")
                        .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          records(prometheus::BuildCounter()
                      .Name("sluice_records_total")
                      .Help("Records by feature set and outcome: written to the stores, rejected (dead "
                            "letters), skipped (filtered or duplicate)")
                      .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          pushed(prometheus::BuildCounter()
                     .Name("sluice_pushed_records_total")
                     .Help("Records written through POST /v1/ingest, by feature set")
                     .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          consumed(prometheus::BuildCounter()
                       .Name("sluice_kafka_messages_total")
                       .Help("Messages consumed from Kafka, all feature sets")
                       .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          store_errors(prometheus::BuildCounter()
                           .Name("sluice_store_errors_total")
                           .Help("Failed store operations (each retry counts), by store")
                           .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          batches(prometheus::BuildCounter()
                      .Name("sluice_write_batches_total")
                      .Help("Batches committed to the stores")
                      .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          stages(prometheus::BuildHistogram()
                     .Name("sluice_record_stage_seconds")
                     .Help("Seconds from a traced Kafka record's production (its timestamp) to each stage it "
                           "reaches: consumed, parsed, batched, memory (readable), committed (PostgreSQL), redis; "
                           "one record in 64 is traced")
                     .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          fenced(prometheus::BuildCounter()
                     .Name("sluice_write_fenced_total")
                     .Help("Batch writes rolled back because another writer stored one of their partitions' "
                           "offsets first (a rebalance's former owner, a second instance); each is fitted again "
                           "and rewritten")
                     .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          lag(prometheus::BuildGauge()
                  .Name("sluice_consumer_lag_messages")
                  .Help("Messages between this instance's positions and the ends of its partitions")
                  .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          freshness(prometheus::BuildGauge()
                        .Name("sluice_freshness_seconds")
                        .Help("Age of the newest event time written, by feature set")
                        .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          memory_keys(prometheus::BuildGauge()
                          .Name("sluice_memory_index_keys")
                          .Help("Keys held in the in-memory index, by feature set")
                          .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          queue_depth(prometheus::BuildGauge()
                          .Name("sluice_queue_depth")
                          .Help("Items waiting in the queues between stages, by the stage that reads them")
                          .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          queue_capacity(prometheus::BuildGauge()
                             .Name("sluice_queue_capacity")
                             .Help("Capacity of the queues between stages, by the stage that reads them")
                             .Labels({{"environment", c.environment}})
                       .Register(*registry)),
          build_info(prometheus::BuildGauge()
                         .Name("sluice_build_info")
                         .Help("Always 1; the version in a label")
                         .Labels({{"environment", c.environment}})
                       .Register(*registry)) {
        build_info.Add({{"version", SLUICE_VERSION}}).Set(1);
        for (const auto& set : cfg.feature_sets) {
            per_set.push_back(set_metrics{
                {&records.Add({{"feature_set", set.display_name()}, {"outcome", "written"}})},
                {&records.Add({{"feature_set", set.display_name()}, {"outcome", "rejected"}})},
                {&records.Add({{"feature_set", set.display_name()}, {"outcome", "skipped"}})},
                {&pushed.Add({{"feature_set", set.display_name()}})},
                &lag.Add({{"feature_set", set.display_name()}}),
                &freshness.Add({{"feature_set", set.display_name()}}),
                &memory_keys.Add({{"feature_set", set.display_name()}}),
            });
        }
        consumed_total.counter = &consumed.Add({});
        batches_total.counter = &batches.Add({});
        fenced_total.counter = &fenced.Add({});
        for (std::size_t i = 0; i < trace_stage_count; ++i)
            stage_mirrors[i].histogram = &stages.Add({{"stage", to_string(static_cast<trace_stage>(i))}}, stage_buckets());
        postgres_errors.counter = &store_errors.Add({{"store", "postgres"}});
        redis_errors.counter = &store_errors.Add({{"store", "redis"}});
        dlq_errors.counter = &store_errors.Add({{"store", "dead_letter_topic"}});
        preprocess_depth = &queue_depth.Add({{"stage", "preprocess"}});
        write_depth = &queue_depth.Add({{"stage", "write"}});
        preprocess_capacity = &queue_capacity.Add({{"stage", "preprocess"}});
        write_capacity = &queue_capacity.Add({{"stage", "write"}});
    }

    struct set_metrics {
        mirrored_counter written, rejected, skipped, pushed;
        prometheus::Gauge* lag;
        prometheus::Gauge* freshness;
        prometheus::Gauge* memory_keys;
    };
    struct request_metrics {
        prometheus::Counter* count;
        prometheus::Histogram* duration;
    };

    request_metrics& request_slot(std::string_view route, std::string_view method, int status) {
        // Each io thread keeps its own map of the label sets it has seen, so a request takes no
        // lock here; prometheus-cpp's Add (locked) runs once per thread and label set.
        thread_local std::unordered_map<std::string, request_metrics> mine;
        thread_local std::uint64_t owner = 0;
        if (owner != generation) {  // another telemetry object used this thread before
            mine.clear();
            owner = generation;
        }
        std::string id;
        id.reserve(route.size() + method.size() + 5);
        id.append(route).append(1, ' ').append(method).append(1, ' ').append(std::to_string(status));
        auto it = mine.find(id);
        if (it != mine.end()) return it->second;
        const std::string r(route), m(method);
        request_metrics slot{&requests.Add({{"route", r}, {"method", m}, {"status", std::to_string(status)}}),
                             &durations.Add({{"route", r}, {"method", m}}, latency_buckets())};
        return mine.emplace(std::move(id), slot).first->second;
    }

    static inline std::atomic<std::uint64_t> next_generation{1};
    const std::uint64_t generation = next_generation.fetch_add(1);
    const config& cfg;
    const pipeline_stats& stats;
    telemetry_sources sources;
    std::shared_ptr<prometheus::Registry> registry;
    prometheus::Family<prometheus::Counter>& requests;
    prometheus::Family<prometheus::Histogram>& durations;
    prometheus::Family<prometheus::Counter>& records;
    prometheus::Family<prometheus::Counter>& pushed;
    prometheus::Family<prometheus::Counter>& consumed;
    prometheus::Family<prometheus::Counter>& store_errors;
    prometheus::Family<prometheus::Counter>& batches;
    prometheus::Family<prometheus::Histogram>& stages;
    prometheus::Family<prometheus::Counter>& fenced;
    std::array<mirrored_stage, trace_stage_count> stage_mirrors;
    prometheus::Family<prometheus::Gauge>& lag;
    prometheus::Family<prometheus::Gauge>& freshness;
    prometheus::Family<prometheus::Gauge>& memory_keys;
    prometheus::Family<prometheus::Gauge>& queue_depth;
    prometheus::Family<prometheus::Gauge>& queue_capacity;
    prometheus::Family<prometheus::Gauge>& build_info;
    std::vector<set_metrics> per_set;
    mirrored_counter consumed_total, batches_total, fenced_total, postgres_errors, redis_errors, dlq_errors;
    prometheus::Gauge* preprocess_depth = nullptr;
    prometheus::Gauge* write_depth = nullptr;
    prometheus::Gauge* preprocess_capacity = nullptr;
    prometheus::Gauge* write_capacity = nullptr;
    std::mutex scrape_mutex;  // one scrape at a time brings the mirrored counters up to date
};

prometheus_telemetry::prometheus_telemetry(const config& cfg, const pipeline_stats& stats, telemetry_sources sources)
    : impl_(std::make_unique<impl>(cfg, stats, std::move(sources))) {}

prometheus_telemetry::~prometheus_telemetry() = default;

feature_set_figures figures_of(const pipeline_stats& stats, std::uint32_t set_index) {
    const auto& c = stats.set(set_index);
    feature_set_figures f;
    f.records_in = c.written.load(std::memory_order_relaxed);
    f.rejected = c.dead_letters.load(std::memory_order_relaxed);
    f.skipped = c.skipped.load(std::memory_order_relaxed);
    f.last_event_time_ms = c.last_event_time_ms.load(std::memory_order_relaxed);
    f.last_write_ms = c.last_write_ms.load(std::memory_order_relaxed);
    return f;
}

feature_set_figures prometheus_telemetry::figures(std::uint32_t set_index) const {
    feature_set_figures f = figures_of(impl_->stats, set_index);
    if (impl_->sources.consumer_lag) f.consumer_lag = impl_->sources.consumer_lag(set_index);
    return f;
}

void prometheus_telemetry::observe_request(std::string_view route, std::string_view method, int status,
                                           double seconds) {
    auto& slot = impl_->request_slot(route, method, status);
    slot.count->Increment();
    slot.duration->Observe(seconds);
}

std::string prometheus_telemetry::render_metrics() {
    auto& d = *impl_;
    {
        std::lock_guard lock(d.scrape_mutex);
        const auto now = now_ms();
        for (std::uint32_t s = 0; s < d.per_set.size(); ++s) {
            const auto& c = d.stats.set(s);
            auto& m = d.per_set[s];
            m.written.sync(c.written.load(std::memory_order_relaxed));
            m.rejected.sync(c.dead_letters.load(std::memory_order_relaxed));
            m.skipped.sync(c.skipped.load(std::memory_order_relaxed));
            m.pushed.sync(c.pushed.load(std::memory_order_relaxed));
            const auto t = c.last_event_time_ms.load(std::memory_order_relaxed);
            m.freshness->Set(t >= 0 ? static_cast<double>(now - t) / 1000.0 : 0.0);
            m.lag->Set(d.sources.consumer_lag ? static_cast<double>(std::max<std::int64_t>(0, d.sources.consumer_lag(s)))
                                              : 0.0);
            if (d.sources.memory_keys) m.memory_keys->Set(static_cast<double>(d.sources.memory_keys(s)));
        }
        if (d.sources.messages_consumed) d.consumed_total.sync(d.sources.messages_consumed());
        d.batches_total.sync(d.stats.batches.load(std::memory_order_relaxed));
        d.fenced_total.sync(d.stats.fenced_batches.load(std::memory_order_relaxed));
        for (std::size_t i = 0; i < trace_stage_count; ++i)
            d.stage_mirrors[i].sync(d.stats.trace, static_cast<trace_stage>(i));
        d.postgres_errors.sync(d.stats.postgres_errors.load(std::memory_order_relaxed));
        d.redis_errors.sync(d.stats.redis_errors.load(std::memory_order_relaxed));
        d.dlq_errors.sync(d.stats.dead_letter_topic_errors.load(std::memory_order_relaxed));
        if (d.sources.preprocess_queue_depth) d.preprocess_depth->Set(static_cast<double>(d.sources.preprocess_queue_depth()));
        if (d.sources.write_queue_depth) d.write_depth->Set(static_cast<double>(d.sources.write_queue_depth()));
        if (d.sources.queue_capacity) {
            d.preprocess_capacity->Set(static_cast<double>(d.sources.queue_capacity()));
            d.write_capacity->Set(static_cast<double>(d.sources.queue_capacity()));
        }
    }
    prometheus::TextSerializer serializer;
    std::string text = serializer.Serialize(d.registry->Collect());
    if (d.sources.more_metrics) d.sources.more_metrics(text);
    return text;
}

}  // namespace sluice
