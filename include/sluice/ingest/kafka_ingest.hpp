#pragma once
// The Kafka ingest stage: librdkafka consumers in one group, feeding the preprocess queues.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/bounded_queue.hpp"
#include "sluice/core/record.hpp"
#include "sluice/core/result.hpp"
#include "sluice/core/ports/offsets.hpp"

namespace sluice {

/// kafka.consumer_threads consumer threads, each with its own librdkafka consumer in
/// kafka.group_id, subscribed to every feature set's topic. A message goes to the preprocess
/// queue chosen by its partition, so a partition stays in order. When a queue passes the pause
/// watermark the thread pauses the partitions feeding it (and keeps polling, so the group keeps
/// it); below the resume watermark it resumes them. Positions of newly assigned partitions are
/// seeded from PostgreSQL's consumer_offsets when a durable store is given. Offsets are stored
/// (and then committed by librdkafka) only through offsets_durable(). Owned by the app.
class kafka_ingest final : public offset_sink {
public:
    kafka_ingest(const config& cfg, std::string bootstrap_servers, std::vector<channel<raw_message>*> outputs,
                 offset_source* offsets_source);
    ~kafka_ingest() override;

    /// Consume only these feature sets (indices into the config's feature_sets); all when never
    /// called. Each version of a set beyond the first runs in a consumer group of its own. Before start().
    void consume_only(std::vector<std::uint32_t> sets) { consumed_sets_ = std::move(sets); }
    /// Whether this ingest consumes the set.
    bool consumes(std::uint32_t set_index) const;

    status start();
    /// Pauses every partition and hands any held-back message to the queues; returns when every
    /// consumer thread has stopped producing into the queues (or the deadline passes).
    void stop_fetching(std::chrono::milliseconds deadline);
    /// Commits the stored offsets to Kafka, leaves the group and joins the threads, waiting for
    /// the broker no longer than `deadline`. False when a consumer had not left its group by then:
    /// its librdkafka handle is then left running, and the process should end without running
    /// destructors (std::_Exit) once its logs are flushed.
    bool close(std::chrono::steady_clock::time_point deadline);

    void offsets_durable(const std::vector<partition_offset>& offsets) override;
    bool owns(const std::string& topic, std::int32_t partition) const override;
    std::unique_lock<std::mutex> hold_assignment() override { return std::unique_lock(assignment_mutex_); }

    /// Called on a consumer thread with the partitions just revoked (next_offset unused).
    /// Set before start().
    void on_revoke(std::function<void(const std::vector<partition_offset>&)> callback) {
        on_revoke_ = std::move(callback);
    }

    /// Called on a consumer thread with partitions about to be assigned, before any of their
    /// messages is fetched; next_offset is where consumption resumes as seeded from PostgreSQL
    /// (-1 when PostgreSQL has none). Set before start().
    void on_assign(std::function<void(const std::vector<partition_offset>&)> callback) {
        on_assign_ = std::move(callback);
    }
    /// True when this instance's consumers hold at least one partition.
    bool has_assignment() const;
    std::uint64_t messages_consumed() const;
    /// Messages between this instance's positions and the ends of its partitions of the set's
    /// topic, from the watermarks librdkafka last fetched (no broker round trip); -1 when no
    /// partition of it is assigned or none has been fetched yet.
    std::int64_t consumer_lag(std::uint32_t set_index) const;
    /// Messages between what is durable (the offsets the store writer reported) and the ends of
    /// this instance's partitions of the set's topic; -1 while a partition with messages has no
    /// durable offset yet or its end is unknown. What a backfill's catch-up is judged by.
    std::int64_t durable_lag(std::uint32_t set_index) const { return durable_progress(set_index).behind; }
    /// The same with what is durable already: messages from the partitions' starts to the durable
    /// offsets (done) and from there to their ends (behind, -1 when unknown as above).
    struct progress {
        std::int64_t done = 0;
        std::int64_t behind = -1;
    };
    progress durable_progress(std::uint32_t set_index) const;

    struct consumer;  // one consumer thread (defined in kafka_ingest.cpp)

private:
    std::vector<std::uint32_t> consumed_sets_;  // empty: every set
    mutable std::mutex durable_mutex_;
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> durable_;  // next offset durable, per partition
    const config& cfg_;
    std::string bootstrap_;
    std::vector<channel<raw_message>*> outputs_;
    offset_source* offsets_source_;
    std::function<void(const std::vector<partition_offset>&)> on_revoke_;
    std::function<void(const std::vector<partition_offset>&)> on_assign_;
    std::mutex assignment_mutex_;  // revocation vs. the writer's check-and-cache
    std::vector<std::unique_ptr<consumer>> consumers_;
};

/// Produces dead letters to kafka.dead_letter_topic with an idempotent producer: the original
/// value (null for a tombstone), no key, and headers sluice.error, sluice.feature_set,
/// sluice.source.topic, sluice.source.partition, sluice.source.offset. publish() waits for
/// Kafka's acknowledgement of every message. Used by the store writer thread only.
class kafka_dead_letter_publisher final : public dead_letter_publisher {
public:
    kafka_dead_letter_publisher(const config& cfg, std::string bootstrap_servers);
    ~kafka_dead_letter_publisher() override;
    status start();
    status publish(const std::vector<dead_letter>& letters) override;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

/// librdkafka's mock cluster: a Kafka-protocol broker on loopback inside this process, with one
/// topic per feature set. For demos and tests ("brokers": "embedded").
class embedded_kafka {
public:
    embedded_kafka();
    ~embedded_kafka();
    status start(const config& cfg);
    /// "127.0.0.1:port[,...]"
    const std::string& bootstrap_servers() const { return bootstrap_; }

private:
    struct impl;
    std::unique_ptr<impl> impl_;
    std::string bootstrap_;
};

/// Produces realistic-looking events for every feature set at generator.events_per_sec, so the
/// demo shows live data. Its own thread and producer.
class event_generator {
public:
    event_generator(const config& cfg, std::string bootstrap_servers);
    ~event_generator();
    status start();
    void stop();
    std::uint64_t produced() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace sluice
