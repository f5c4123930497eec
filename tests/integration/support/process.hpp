#pragma once
// Child processes for integration tests: servers (postgres, redis-server), the sluice daemon
// and one-shot commands (initdb, `sluice --check`). fork/exec with stdout+stderr appended to
// a log file, an optional drop to an unprivileged user, and a parent-death signal so that no
// child outlives a crashed or killed test binary.
//
// A child_process is owned by one fixture and used from the thread that spawned it: the
// parent-death signal fires when the *spawning thread* exits, so spawn from the test thread.

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sluice::it {

/// How a child ended.
struct exit_status {
    bool exited = false;  // returned from main / called exit
    int code = -1;        // exit code, when exited
    int signal = 0;       // terminating signal, when not exited

    bool ok() const { return exited && code == 0; }
    std::string describe() const;  // "exit 0", "signal 9 (Killed)"
};

struct spawn_options {
    std::vector<std::string> argv;          // argv[0] is looked up in PATH when it has no '/'
    std::filesystem::path log_path;         // stdout+stderr appended here; empty: /dev/null
    std::string run_as;                     // user to become when we are root; empty: stay
    std::filesystem::path working_dir;      // empty: inherit
    int death_signal = SIGKILL;             // sent to the child when the test process dies
    std::vector<std::string> extra_env;     // "NAME=value" added to the environment
};

class child_process {
public:
    child_process() = default;
    /// Spawns at once; throws std::runtime_error when fork/exec setup fails. A failed exec
    /// shows up as exit code 127 and a message in the log.
    explicit child_process(spawn_options options);
    /// Kills the child's process group with SIGKILL and reaps it if it still runs.
    ~child_process();
    child_process(child_process&& other) noexcept;
    child_process& operator=(child_process&& other) noexcept;
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    pid_t pid() const { return pid_; }
    /// True while the child has not been reaped; reaps it (non-blocking) if it has exited.
    bool running();
    /// The exit status once reaped.
    const std::optional<exit_status>& status() const { return status_; }

    void send_signal(int sig);
    /// Waits for the child to exit; nullopt if it still runs at the deadline.
    std::optional<exit_status> wait_for(std::chrono::milliseconds timeout);
    /// `sig`, then wait `grace`; after that SIGKILL to the whole process group. Always reaps.
    /// `timed_out` (optional) tells whether SIGKILL was needed.
    exit_status stop(int sig, std::chrono::milliseconds grace, bool* timed_out = nullptr);

private:
    void kill_group_and_reap() noexcept;
    pid_t pid_ = -1;
    std::optional<exit_status> status_;
};

struct command_result {
    exit_status status;
    bool timed_out = false;
    std::string output;  // stdout and stderr interleaved
};

/// Runs a command to completion (SIGKILL at the deadline) and captures its output.
command_result run_command(const std::vector<std::string>& argv,
                           std::chrono::milliseconds timeout = std::chrono::seconds(60),
                           const std::string& run_as = {},
                           const std::filesystem::path& working_dir = {},
                           const std::vector<std::string>& extra_env = {});

/// uid and gid of a user; when it does not exist and we are root, it is created as a system
/// user with `useradd --system` first. Throws when that is impossible.
struct user_ids {
    unsigned uid = 0;
    unsigned gid = 0;
};
user_ids ensure_user(const std::string& name);

}  // namespace sluice::it
