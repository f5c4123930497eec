// Broker faults : with a paced stream running, the mock cluster's broker goes
// down and comes back, its Fetch/OffsetCommit/Heartbeat requests fail with retriable errors,
// and its round-trip time jumps to 500 ms. The daemon's consumer must recover by itself with
// nothing lost and nothing doubled in history, and its Kafka committed offsets must catch up.
//
// The test's producer shares the mock: its messages are retried through the fault (idempotent
// producer, 60 s message timeout) and every delivery report must succeed in the end. History is
// checked against what the topic holds once the stream ends: a produce request answered over a
// connection the fault cut and then retried is sometimes written twice by the 2.0.2 mock, and
// that copy is a message of the topic like any other (finish_stream).
//
// Sizes: SLUICE_IT_BROKER_FAULT_SECONDS (default 5), SLUICE_IT_BROKER_RATE (events/s, default 300).

#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/audit.hpp"
#include "integration/support/faults.hpp"
#include "integration/support/stream.hpp"
#include "integration/support/suite.hpp"

namespace it = sluice::it;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr int k_partitions = 4;
constexpr int k_keys = 300;
constexpr std::int32_t k_broker = 1;  // the mock's only broker

// Kafka API keys (rdkafka_proto.h is not installed).
constexpr std::int16_t k_fetch = 1;
constexpr std::int16_t k_offset_commit = 8;
constexpr std::int16_t k_heartbeat = 12;

int fault_seconds() { return static_cast<int>(it::env_int("SLUICE_IT_BROKER_FAULT_SECONDS", 5)); }
double broker_rate() { return static_cast<double>(it::env_int("SLUICE_IT_BROKER_RATE", 300)); }

std::string describe(const it::partition_offsets& o) {
    std::string out;
    for (const auto& [p, off] : o) out += (out.empty() ? "" : " ") + std::to_string(p) + ":" + std::to_string(off);
    return out;
}

}  // namespace

class BrokerFault : public it::stack_suite<BrokerFault> {
public:
    static std::vector<it::topic_spec> topics() {
        return {{"bf-down", k_partitions},
                {"bf-errors", k_partitions},
                {"bf-rtt", k_partitions},
                {"bf-stop", k_partitions}};
    }

protected:
    void TearDown() override {
        // Leave the mock healthy for the next test whatever happened.
        auto* mock = stack_->kafka.mock();
        rd_kafka_mock_broker_set_up(mock, k_broker);
        rd_kafka_mock_broker_set_rtt(mock, k_broker, 0);
        for (std::int16_t api : {k_fetch, k_offset_commit, k_heartbeat}) rd_kafka_mock_clear_request_errors(mock, api);
    }

    // Starts a daemon and a paced stream on `topic`, runs `fault` (it returns when the fault is
    // over), then checks that the consumer recovers and history holds every event exactly once.
    void run_scenario(const char* tag, const std::string& topic, const std::function<void()>& fault) {
        it::test_stack& s = *stack_;
        const std::string dsn = s.postgres.dsn();
        const std::string group = std::string("it-") + tag + "-" + it::random_suffix();
        const int http_port = it::free_port();
        const double rate = broker_rate();
        const auto test_t0 = std::chrono::steady_clock::now();
        std::printf("[%s] group=%s rate=%.0f/s keys=%d fault=%d s\n", tag, group.c_str(), rate, k_keys, fault_seconds());

        it::daemon_process daemon(it::user_activity_config(s, group, http_port, topic));
        ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port));

        it::paced_producer producer(s.kafka, topic, std::string(tag) + "-", k_keys, rate, it::now_ms() - 3600 * 1000);
        long long before_n = 0;
        ASSERT_NO_FATAL_FAILURE(it::warm_up(producer, dsn, topic, 3s, "the fault", before_n));
        const std::size_t rebalances_before = it::rebalance_lines(daemon.log_path()).size();

        const auto fault_t0 = std::chrono::steady_clock::now();
        const std::size_t sent_at_fault = producer.sent();
        fault();
        if (HasFatalFailure()) return;
        const double fault_s = it::seconds_since(fault_t0);
        const std::size_t sent_at_end = producer.sent();
        const auto end_t0 = std::chrono::steady_clock::now();
        ASSERT_TRUE(daemon.running()) << "the daemon exited during the fault";

        // Recovery: what was produced until the fault ended reaches history (the producer's own
        // retries are part of that time).
        const long long caught =
            it::wait_history(dsn, it::default_schema, topic, static_cast<long long>(sent_at_end), 90s);
        const double recovery_s = it::seconds_since(end_t0);
        std::this_thread::sleep_for(2s);
        it::history_check audit;
        ASSERT_NO_FATAL_FAILURE(it::finish_stream(producer, dsn, topic, audit));
        const auto rebalances = it::rebalance_lines(daemon.log_path()).size() - rebalances_before;

        // Kafka's committed offsets catch up too (auto commit), so lag tools keep working.
        it::partition_offsets ends, committed;
        std::string offsets_error;
        const bool commits_caught_up = it::wait_until(20s, [&] {
            try {
                ends = s.kafka.end_offsets(topic, k_partitions);
                committed = s.kafka.committed_offsets(group, topic, k_partitions);
                return committed == ends;
            } catch (const std::exception& e) {
                offsets_error = e.what();
                return false;
            }
        }, 500ms);

        std::printf("[%s] fault lasted %.1f s, produced during it %zu; backlog stored %.2f s after it ended "
                    "(history %lld of %zu); rebalance lines since the fault: %zu\n",
                    tag, fault_s, sent_at_end - sent_at_fault, recovery_s, caught, sent_at_end, rebalances);
        std::printf("[%s] Kafka committed %s, end offsets %s (%s)\n", tag, describe(committed).c_str(),
                    describe(ends).c_str(), commits_caught_up ? "in step" : "BEHIND");
        it::print_history_check(tag, audit);

        EXPECT_GE(caught, static_cast<long long>(sent_at_end)) << "the consumer did not recover within 90 s";
        it::expect_each_event_once(audit);
        EXPECT_TRUE(commits_caught_up) << "Kafka committed offsets " << describe(committed) << " != end offsets "
                                       << describe(ends) << " " << offsets_error;
        it::report_mismatches("user_activity_latest after the fault", it::settled_latest(dsn, producer));
        auto readyz = it::probe_readyz(http_port);
        EXPECT_EQ(readyz.status, 200) << "/readyz after recovery: " << readyz.body;

        it::finish_test(daemon, tag, test_t0);
    }
};

TEST_F(BrokerFault, broker_down_and_up_mid_stream) {
    auto* mock = stack_->kafka.mock();
    run_scenario("broker-down", "bf-down", [&] {
        ASSERT_EQ(rd_kafka_mock_broker_set_down(mock, k_broker), RD_KAFKA_RESP_ERR_NO_ERROR);
        std::this_thread::sleep_for(std::chrono::seconds(fault_seconds()));
        ASSERT_EQ(rd_kafka_mock_broker_set_up(mock, k_broker), RD_KAFKA_RESP_ERR_NO_ERROR);
    });
}

TEST_F(BrokerFault, retriable_request_errors_on_fetch_commit_and_heartbeat) {
    auto* mock = stack_->kafka.mock();
    std::size_t pushed = 0;
    run_scenario("request-errors", "bf-errors", [&] {
        const auto t0 = std::chrono::steady_clock::now();
        while (it::seconds_since(t0) < fault_seconds() + 3) {
            rd_kafka_mock_push_request_errors(mock, k_fetch, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                              RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
                                              RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
            rd_kafka_mock_push_request_errors(mock, k_offset_commit, 3, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                                              RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                              RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
            rd_kafka_mock_push_request_errors(mock, k_heartbeat, 2, RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
                                              RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
            pushed += 8;
            std::this_thread::sleep_for(500ms);
        }
        // Errors nobody consumed yet must not leak into the checks that follow.
        for (std::int16_t api : {k_fetch, k_offset_commit, k_heartbeat}) rd_kafka_mock_clear_request_errors(mock, api);
    });
    std::printf("[request-errors] %zu errors pushed (Fetch, OffsetCommit, Heartbeat)\n", pushed);
}

TEST_F(BrokerFault, high_round_trip_time) {
    auto* mock = stack_->kafka.mock();
    run_scenario("high-rtt", "bf-rtt", [&] {
        ASSERT_EQ(rd_kafka_mock_broker_set_rtt(mock, k_broker, 500), RD_KAFKA_RESP_ERR_NO_ERROR);
        std::this_thread::sleep_for(std::chrono::seconds(fault_seconds()));
        ASSERT_EQ(rd_kafka_mock_broker_set_rtt(mock, k_broker, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    });
}

// SIGTERM while the broker is down: the consumer cannot commit to Kafka or leave its group, and
// librdkafka's close can wait for the coordinator for as long as it is gone. The daemon must still
// exit within pipeline.shutdown_timeout_ms (plus the close's grace) and lose nothing: what it had
// stored is in PostgreSQL with its offsets, and the next run consumes the rest. The broker goes
// down at several moments around the signal, since whether the close blocks is a race.
TEST_F(BrokerFault, sigterm_while_the_broker_is_down_exits_in_time_and_loses_nothing) {
    const auto test_t0 = std::chrono::steady_clock::now();
    it::test_stack& s = *stack_;
    auto* mock = s.kafka.mock();
    const std::string dsn = s.postgres.dsn();
    const std::string topic = "bf-stop";
    const std::string group = "it-stop-" + it::random_suffix();
    const int http_port = it::free_port();
    constexpr int shutdown_ms = 3000;
    // daemon::stop gives the consumers' close at least 2 s beyond the drain (daemon.cpp).
    constexpr auto exit_bound = std::chrono::milliseconds(shutdown_ms + 2000 + 3000);
    auto cfg = it::user_activity_config(s, group, http_port, topic);
    cfg["pipeline"]["shutdown_timeout_ms"] = shutdown_ms;
    // A member that could not leave holds its partitions until its session expires; the next
    // round's daemon waits for that (the mock accepts 3000 ms; the daemon's default is 6000).
    cfg["kafka"]["properties"]["session.timeout.ms"] = "3000";
    cfg["kafka"]["properties"]["heartbeat.interval.ms"] = "750";
    it::daemon_process daemon(cfg);
    it::event_stream stream(s.kafka, topic, k_keys, 0x5709, it::now_ms() - 3600 * 1000);

    // How long after the broker goes down the SIGTERM comes: before the consumer notices, while
    // it reconnects, and after it has given up on the coordinator.
    const std::vector<std::chrono::milliseconds> delays = {0ms, 300ms, 1000ms, 2500ms};
    for (std::size_t round = 0; round < delays.size(); ++round) {
        ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port, "round " + std::to_string(round + 1)));
        for (int i = 0; i < 200; ++i) stream.send_random();
        ASSERT_NO_THROW(stream.flush(30s));
        const long long stored = it::wait_history(dsn, it::default_schema, topic,
                                                  static_cast<long long>(stream.size()), 30s, &daemon);
        ASSERT_EQ(stored, static_cast<long long>(stream.size())) << "round " << round + 1 << ": not consumed";
        // More events that may or may not be stored before the signal.
        for (int i = 0; i < 100; ++i) stream.send_random();
        ASSERT_NO_THROW(stream.flush(30s));

        ASSERT_EQ(rd_kafka_mock_broker_set_down(mock, k_broker), RD_KAFKA_RESP_ERR_NO_ERROR);
        std::this_thread::sleep_for(delays[round]);
        const auto t0 = std::chrono::steady_clock::now();
        const auto st = daemon.terminate(exit_bound + 20s);
        const double took = it::seconds_since(t0);
        ASSERT_EQ(rd_kafka_mock_broker_set_up(mock, k_broker), RD_KAFKA_RESP_ERR_NO_ERROR);
        std::printf("[stop] round %zu: broker down %lld ms before SIGTERM: %s in %.2f s\n", round + 1,
                    static_cast<long long>(delays[round].count()), st ? st->describe().c_str() : "no exit", took);
        std::fflush(stdout);
        ASSERT_TRUE(st.has_value()) << "round " << round + 1 << ": no exit within "
                                    << std::chrono::duration_cast<std::chrono::seconds>(exit_bound + 20s).count()
                                    << " s of SIGTERM with the broker down";
        EXPECT_TRUE(st->exited && (st->code == 0 || st->code == 1)) << st->describe();
        EXPECT_LE(took, std::chrono::duration<double>(exit_bound).count())
            << "round " << round + 1 << ": the exit took longer than the shutdown deadline allows";
    }

    // Nothing lost, nothing doubled: the next run with the broker up stores the rest.
    ASSERT_NO_FATAL_FAILURE(it::start_until_ready(daemon, http_port, "after the rounds"));
    const long long stored =
        it::wait_history(dsn, it::default_schema, topic, static_cast<long long>(stream.size()), 60s, &daemon);
    std::this_thread::sleep_for(1s);
    const it::history_check h = it::check_history(dsn, it::default_schema, topic, stream.events());
    ASSERT_EQ(h.error, "") << "history could not be checked";
    it::print_history_check("stop", h);
    EXPECT_EQ(stored, static_cast<long long>(stream.size()));
    it::expect_each_event_once(h);
    it::finish_test(daemon, "stop", test_t0);
}
