// Broker faults (issue 3 item 6): with a paced stream running, the mock cluster's broker goes
// down and comes back, its Fetch/OffsetCommit/Heartbeat requests fail with retriable errors,
// and its round-trip time jumps to 500 ms. The daemon's consumer must recover by itself with
// nothing lost and nothing doubled in history, and its Kafka committed offsets must catch up.
//
// The test's producer shares the mock: its messages are retried through the fault (idempotent
// producer, 60 s message timeout) and every delivery report must succeed in the end.
//
// Sizes: SLUICE_IT_BROKER_FAULT_SECONDS (default 5), SLUICE_IT_BROKER_RATE (events/s, default 300).

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "integration/support/faults.hpp"
#include "integration/support/stack.hpp"

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

int fault_seconds() { return it::env_number("SLUICE_IT_BROKER_FAULT_SECONDS", 5); }
double broker_rate() { return it::env_number("SLUICE_IT_BROKER_RATE", 300); }

void report(const char* what, const std::vector<std::string>& bad, std::size_t limit = 10) {
    if (bad.empty()) return;
    std::string text = std::string(what) + ": " + std::to_string(bad.size()) + " mismatches, first ones:";
    for (std::size_t i = 0; i < bad.size() && i < limit; ++i) text += "\n  " + bad[i];
    ADD_FAILURE() << text;
}

std::string describe(const it::partition_offsets& o) {
    std::string out;
    for (const auto& [p, off] : o) out += (out.empty() ? "" : " ") + std::to_string(p) + ":" + std::to_string(off);
    return out;
}

}  // namespace

class BrokerFault : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        try {
            stack_ = std::make_unique<it::test_stack>();
            for (const char* t : {"bf-down", "bf-errors", "bf-rtt"}) stack_->kafka.create_topic(t, k_partitions);
        } catch (const std::exception& e) {
            setup_error_ = e.what();
            stack_.reset();
        }
    }
    static void TearDownTestSuite() { stack_.reset(); }

    void SetUp() override {
        ASSERT_TRUE(stack_) << "the test stack did not start: " << setup_error_;
        ASSERT_TRUE(std::filesystem::exists(it::sluice_binary())) << it::sluice_binary() << " was not built";
    }
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
        daemon.start();
        ASSERT_TRUE(daemon.wait_http_ready(http_port, 30s)) << "GET /healthz never answered 200";
        ASSERT_TRUE(daemon.wait_http_ready(http_port, 60s, "/readyz")) << "GET /readyz never answered 200";

        it::paced_producer producer(s.kafka, topic, std::string(tag) + "-", k_keys, rate, it::now_ms() - 3600 * 1000);
        producer.start();
        std::this_thread::sleep_for(3s);
        const auto before_n = static_cast<long long>(producer.sent());
        ASSERT_GE(it::wait_history(dsn, topic, before_n, 30s), before_n) << "the daemon did not keep up before the fault";
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
        const long long caught = it::wait_history(dsn, topic, static_cast<long long>(sent_at_end), 90s);
        const double recovery_s = it::seconds_since(end_t0);
        std::this_thread::sleep_for(2s);
        producer.stop();
        ASSERT_EQ(producer.error(), "");
        ASSERT_NO_THROW(producer.flush()) << "a delivery report failed";
        const auto total = static_cast<long long>(producer.events().size());
        it::wait_history(dsn, topic, total, 60s);
        std::this_thread::sleep_for(1s);
        const auto audit = it::audit_history(dsn, topic, producer.events());
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
        it::print_audit(tag, audit);

        EXPECT_GE(caught, static_cast<long long>(sent_at_end)) << "the consumer did not recover within 90 s";
        EXPECT_EQ(audit.error, "");
        EXPECT_EQ(audit.missing, 0u);
        EXPECT_EQ(audit.duplicates, 0u);
        EXPECT_EQ(audit.unexpected + audit.wrong, 0u);
        EXPECT_TRUE(commits_caught_up) << "Kafka committed offsets " << describe(committed) << " != end offsets "
                                       << describe(ends) << " " << offsets_error;
        std::vector<std::string> bad;
        it::wait_until(20s, [&] { return (bad = it::pg_latest_mismatches(dsn, producer.newest())).empty(); }, 500ms);
        report("user_activity_latest after the fault", bad);
        auto readyz = it::probe_readyz(http_port);
        EXPECT_EQ(readyz.status, 200) << "/readyz after recovery: " << readyz.body;

        auto st = daemon.terminate(30s);
        EXPECT_TRUE(st.has_value() && st->ok()) << (st ? st->describe() : "no exit within 30 s of SIGTERM");
        std::printf("[%s] test took %.1f s\n", tag, it::seconds_since(test_t0));
        std::fflush(stdout);
    }

    static inline std::unique_ptr<it::test_stack> stack_;
    static inline std::string setup_error_;
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
