#pragma once
// The shape every end-to-end suite shares: one real stack (stack.hpp) for all the tests of a
// suite, with the suite's topics created once, and the steps that open and close a test that
// runs the daemon. gtest runs all of it on the test thread.

#include <gtest/gtest.h>

#include <chrono>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "integration/support/daemon.hpp"
#include "integration/support/stack.hpp"

namespace sluice::it {

/// A topic a suite creates on its stack's mock cluster.
struct topic_spec {
    std::string name;
    int partitions = 1;
};

/// Fixture base of a suite: `class Crash : public it::stack_suite<Crash>` with a public
/// `static std::vector<it::topic_spec> topics()`. SetUpTestSuite starts the stack and creates
/// the topics (a failure is kept and reported by every test's SetUp); TearDownTestSuite
/// destroys it. Each suite has its own stack_ (one per Suite type).
template <class Suite>
class stack_suite : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        try {
            stack_ = std::make_unique<test_stack>();
            for (const auto& t : Suite::topics()) stack_->kafka.create_topic(t.name, t.partitions);
        } catch (const std::exception& e) {
            setup_error_ = e.what();
            stack_.reset();
        }
    }
    static void TearDownTestSuite() { stack_.reset(); }

    void SetUp() override {
        ASSERT_TRUE(stack_) << "the test stack did not start: " << setup_error_;
        ASSERT_TRUE(std::filesystem::exists(sluice_binary())) << sluice_binary() << " was not built";
    }

    static inline std::unique_ptr<test_stack> stack_;
    static inline std::string setup_error_;
};

/// Starts `daemon` and waits until GET /healthz (30 s) and then GET /readyz (60 s) answer 200
/// on `http_port`; a fatal failure, its message prefixed with `who`, otherwise. Call it inside
/// ASSERT_NO_FATAL_FAILURE.
void start_until_ready(daemon_process& daemon, int http_port, const std::string& who = "");

/// The end of a test: SIGTERM `daemon`, expect exit 0 within 30 s, and print
/// "[tag] test took S s" (since `test_t0`).
void finish_test(daemon_process& daemon, const std::string& tag, std::chrono::steady_clock::time_point test_t0);

}  // namespace sluice::it
