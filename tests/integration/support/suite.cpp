#include "integration/support/suite.hpp"

#include <cstdio>

#include "integration/support/wait.hpp"

namespace sluice::it {

void start_until_ready(daemon_process& daemon, int http_port, const std::string& who) {
    daemon.start();
    ASSERT_TRUE(daemon.wait_http_ready(http_port, std::chrono::seconds(30))) << who << "GET /healthz never answered 200";
    ASSERT_TRUE(daemon.wait_http_ready(http_port, std::chrono::seconds(60), "/readyz"))
        << who << "GET /readyz never answered 200";
}

void finish_test(daemon_process& daemon, const std::string& tag, std::chrono::steady_clock::time_point test_t0) {
    auto st = daemon.terminate(std::chrono::seconds(30));
    EXPECT_TRUE(st.has_value() && st->ok()) << (st ? st->describe() : "no exit within 30 s of SIGTERM");
    std::printf("[%s] test took %.1f s\n", tag.c_str(), seconds_since(test_t0));
    std::fflush(stdout);
}

}  // namespace sluice::it
