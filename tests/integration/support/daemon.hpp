#pragma once
// The real `sluice` binary as a child of the test: its config written to a private temp dir,
// stdout+stderr to a log file there, readiness by polling its HTTP endpoints, and a clean
// (SIGTERM) or crash-like (SIGKILL) stop. Owned by one test and driven from its thread; if
// the test has failed by the time the object is destroyed, the log tail is printed so the
// reader sees what the daemon said.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "integration/support/process.hpp"
#include "integration/support/temp_dir.hpp"

namespace sluice::it {

/// SLUICE_IT_BINARY from the environment, else the SLUICE_BINARY the build compiled in.
std::string sluice_binary();

class daemon_process {
public:
    /// Writes the config (pretty-printed JSON) to <dir>/sluice.json; does not start.
    explicit daemon_process(const nlohmann::json& config);
    /// Same, with the config file's text as is (comments, deliberate mistakes).
    explicit daemon_process(std::string config_text);
    /// SIGKILL if still running; prints the log tail when the current test has failed.
    ~daemon_process();
    daemon_process(const daemon_process&) = delete;
    daemon_process& operator=(const daemon_process&) = delete;

    /// Runs `<binary> --config <file> [extra_args...]`. Again after an exit: same config and
    /// log (a marker line separates the runs).
    void start(const std::vector<std::string>& extra_args = {});
    bool running();
    /// Runs `binary` instead of sluice_binary() from the next start() (fixture self-tests).
    void use_binary(std::string binary) { binary_ = std::move(binary); }

    /// Polls GET `path` until it answers 200 (true), the daemon exits or the time is up (false).
    bool wait_http_ready(int port, std::chrono::milliseconds timeout, const std::string& path = "/healthz");
    /// SIGTERM and wait; nullopt when it had not exited after `timeout` (it is then killed).
    std::optional<exit_status> terminate(std::chrono::milliseconds timeout = std::chrono::seconds(30));
    /// SIGKILL, as a crash would.
    exit_status kill9();

    std::string log_tail(std::size_t max_bytes = 16384) const;
    std::filesystem::path config_path() const { return dir_ / "sluice.json"; }
    std::filesystem::path log_path() const { return dir_ / "sluice.log"; }
    pid_t pid() const { return proc_ ? proc_->pid() : -1; }

private:
    temp_dir dir_;
    std::optional<child_process> proc_;
    std::string binary_;
    int runs_ = 0;
};

}  // namespace sluice::it
