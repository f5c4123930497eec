#include "integration/support/daemon.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "integration/support/net.hpp"

#ifndef SLUICE_BINARY
#error "SLUICE_BINARY must be defined by the build (path of the sluice executable)"
#endif

namespace sluice::it {

std::string sluice_binary() {
    if (const char* env = std::getenv("SLUICE_IT_BINARY"); env != nullptr && *env != '\0') return env;
    return SLUICE_BINARY;
}

daemon_process::daemon_process(const nlohmann::json& config) : daemon_process(config.dump(2) + "\n") {}

daemon_process::daemon_process(std::string config_text) : dir_("sluice-daemon-") {
    write_file(config_path(), config_text);
}

daemon_process::~daemon_process() {
    if (proc_ && proc_->running()) proc_->stop(SIGKILL, std::chrono::seconds(10));
    if (::testing::Test::HasFailure()) {
        std::printf("---- sluice log tail (%s) ----\n%s\n---- end of sluice log ----\n", log_path().c_str(),
                    log_tail().c_str());
        std::fflush(stdout);
    }
}

void daemon_process::start(const std::vector<std::string>& extra_args) {
    if (running()) return;
    if (runs_++ > 0) {
        std::ofstream(log_path(), std::ios::app) << "\n==== test: daemon restarted (run " << runs_ << ") ====\n";
    }
    std::vector<std::string> argv{binary_.empty() ? sluice_binary() : binary_, "--config", config_path().string()};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    proc_.emplace(spawn_options{argv, log_path(), {}, dir_.path(), SIGKILL, {}});
}

bool daemon_process::running() { return proc_ && proc_->running(); }

bool daemon_process::wait_http_ready(int port, std::chrono::milliseconds timeout, const std::string& path) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (!running()) return false;
        auto res = http_get(port, path, std::chrono::seconds(2));
        if (res.status == 200) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

std::optional<exit_status> daemon_process::terminate(std::chrono::milliseconds timeout) {
    if (!proc_) return std::nullopt;
    bool timed_out = false;
    auto st = proc_->stop(SIGTERM, timeout, &timed_out);
    if (timed_out) return std::nullopt;
    return st;
}

exit_status daemon_process::kill9() {
    if (!proc_) return {};
    return proc_->stop(SIGKILL, std::chrono::seconds(10));
}

std::string daemon_process::log_tail(std::size_t max_bytes) const { return file_tail(log_path(), max_bytes); }

}  // namespace sluice::it
