#pragma once
// librdkafka's mock cluster as the Kafka broker of integration tests (README, "Tests"), plus a
// producer with per-message delivery reports and offset inspection.
//
// kafka_cluster hosts the mock cluster on a private rd_kafka_t; the brokers listen on
// 127.0.0.1 TCP ports that other processes (the daemon) reach at bootstraps() for as long as
// the object lives. Owned by a test fixture and driven from the test thread (delivery reports
// are served inside produce()/flush() on the calling thread). The 2.0.2 mock keeps only the
// last ~5 MiB per partition: keep test volumes under that.

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace sluice::it {

/// Where one produced message landed (from its delivery report).
struct delivery {
    bool done = false;        // a report arrived
    std::string error;        // empty on success
    std::int32_t partition = -1;
    std::int64_t offset = -1;
};

using partition_offsets = std::map<std::int32_t, std::int64_t>;

class kafka_cluster {
public:
    explicit kafka_cluster(int brokers = 1);
    ~kafka_cluster();
    kafka_cluster(const kafka_cluster&) = delete;
    kafka_cluster& operator=(const kafka_cluster&) = delete;

    /// "127.0.0.1:port[,...]"
    const std::string& bootstraps() const { return bootstraps_; }
    /// The mock itself, for fault injection (rd_kafka_mock_broker_set_down, ...).
    rd_kafka_mock_cluster_t* mock() { return mcluster_; }

    void create_topic(const std::string& topic, int partitions);

    /// Queues one message (key/value copied; an empty optional is a Kafka null) and returns
    /// its id for delivery_of(). Throws if the local queue stays full for 30 s.
    std::size_t produce(const std::string& topic, const std::optional<std::string>& key,
                        const std::optional<std::string>& value);
    /// Waits until every queued message has a delivery report; throws if that takes longer
    /// than `timeout` or if any delivery failed.
    void flush(std::chrono::milliseconds timeout = std::chrono::seconds(60));
    /// A copy of the report for an id returned by produce().
    delivery delivery_of(std::size_t id) const;
    std::size_t produced() const;

    /// High watermark (next offset) of each partition 0..partitions-1.
    partition_offsets end_offsets(const std::string& topic, int partitions,
                                  std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// The group's committed offsets (RD_KAFKA_OFFSET_INVALID, -1001, where none), read with
    /// a separate consumer handle that does not join the group.
    partition_offsets committed_offsets(const std::string& group, const std::string& topic, int partitions,
                                        std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// The number of partitions the broker has for `topic`; throws if it does not know it.
    int partitions_of(const std::string& topic, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    /// Commits offsets for a group from outside it (no membership); for tests that seed a group.
    void commit_offsets(const std::string& group, const std::string& topic, const partition_offsets& offsets);

private:
    static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* msg, void* opaque);
    rd_kafka_t* new_consumer(const std::string& group);

    rd_kafka_t* host_ = nullptr;  // owns the mock cluster
    rd_kafka_mock_cluster_t* mcluster_ = nullptr;
    rd_kafka_t* producer_ = nullptr;
    std::string bootstraps_;
    mutable std::mutex mu_;
    std::deque<delivery> deliveries_;
};

}  // namespace sluice::it
