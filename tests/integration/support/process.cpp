#include "integration/support/process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "integration/support/temp_dir.hpp"

extern char** environ;

namespace sluice::it {

namespace {

exit_status decode(int wstatus) {
    exit_status st;
    if (WIFEXITED(wstatus)) {
        st.exited = true;
        st.code = WEXITSTATUS(wstatus);
    } else if (WIFSIGNALED(wstatus)) {
        st.signal = WTERMSIG(wstatus);
    }
    return st;
}

// Only async-signal-safe calls between fork and exec: the test process has librdkafka and
// gtest threads, and their locks may be held at the moment of fork.
[[noreturn]] void child_fail(const char* what) {
    const char* msg = std::strerror(errno);
    (void)!::write(2, "spawn: ", 7);
    (void)!::write(2, what, std::strlen(what));
    (void)!::write(2, ": ", 2);
    (void)!::write(2, msg, std::strlen(msg));
    (void)!::write(2, "\n", 1);
    ::_exit(127);
}

}  // namespace

std::string exit_status::describe() const {
    if (exited) return "exit " + std::to_string(code);
    if (signal != 0) return "signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
    return "unknown";
}

user_ids ensure_user(const std::string& name) {
    auto lookup = [&]() -> std::optional<user_ids> {
        struct passwd pw {};
        struct passwd* found = nullptr;
        std::vector<char> buf(16384);
        if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
            return std::nullopt;
        }
        return user_ids{found->pw_uid, found->pw_gid};
    };
    if (auto ids = lookup()) return *ids;
    if (::geteuid() != 0) throw std::runtime_error("user " + name + " does not exist and we are not root");
    auto r = run_command({"useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name},
                         std::chrono::seconds(30));
    if (auto ids = lookup()) return *ids;
    throw std::runtime_error("cannot create user " + name + ": " + r.output);
}

child_process::child_process(spawn_options options) {
    if (options.argv.empty()) throw std::invalid_argument("spawn: empty argv");

    // Everything the child needs is prepared before fork.
    std::vector<char*> argv;
    for (auto& a : options.argv) argv.push_back(a.data());
    argv.push_back(nullptr);

    std::vector<std::string> env_storage;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) env_storage.emplace_back(*e);
    for (const auto& e : options.extra_env) env_storage.push_back(e);
    std::vector<char*> envp;
    for (auto& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);

    bool drop = !options.run_as.empty() && ::geteuid() == 0;
    user_ids ids;
    if (drop) ids = ensure_user(options.run_as);

    std::string log = options.log_path.empty() ? std::string("/dev/null") : options.log_path.string();
    int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw std::runtime_error("open " + log + ": " + std::strerror(errno));
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
        ::close(log_fd);
        throw std::runtime_error(std::string("open /dev/null: ") + std::strerror(errno));
    }
    std::string workdir = options.working_dir.string();
    const pid_t parent = ::getpid();
    const int death_signal = options.death_signal;
    const bool search_path = options.argv[0].find('/') == std::string::npos;

    pid_t pid = ::fork();
    if (pid < 0) {
        int e = errno;
        ::close(log_fd);
        ::close(null_fd);
        throw std::runtime_error(std::string("fork: ") + std::strerror(e));
    }
    if (pid == 0) {
        // Own process group: a stop can then reach the child's children (postgres backends).
        ::setpgid(0, 0);
        if (::dup2(null_fd, 0) < 0 || ::dup2(log_fd, 1) < 0 || ::dup2(log_fd, 2) < 0) child_fail("dup2");
        // Leave no descriptor of the test process (sockets of librdkafka, libpq) to the child.
        if (::syscall(SYS_close_range, 3U, ~0U, 0U) != 0) {
            for (int fd = 3; fd < 4096; ++fd) ::close(fd);
        }
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT}) ::signal(s, SIG_DFL);
        if (drop) {
            gid_t gid = ids.gid;
            if (::setgroups(1, &gid) != 0) child_fail("setgroups");
            if (::setgid(ids.gid) != 0) child_fail("setgid");
            if (::setuid(ids.uid) != 0) child_fail("setuid");
        }
        // After the uid change: changing credentials clears the parent-death signal.
        if (::prctl(PR_SET_PDEATHSIG, death_signal) != 0) child_fail("prctl");
        if (::getppid() != parent) ::_exit(126);  // the test process died while we forked
        if (!workdir.empty() && ::chdir(workdir.c_str()) != 0) child_fail("chdir");
        if (search_path) {
            ::execvpe(argv[0], argv.data(), envp.data());
        } else {
            ::execve(argv[0], argv.data(), envp.data());
        }
        child_fail(argv[0]);
    }
    ::close(log_fd);
    ::close(null_fd);
    pid_ = pid;
}

child_process::~child_process() { kill_group_and_reap(); }

child_process::child_process(child_process&& other) noexcept : pid_(other.pid_), status_(other.status_) {
    other.pid_ = -1;
}

child_process& child_process::operator=(child_process&& other) noexcept {
    if (this != &other) {
        kill_group_and_reap();
        pid_ = other.pid_;
        status_ = other.status_;
        other.pid_ = -1;
    }
    return *this;
}

bool child_process::running() {
    if (pid_ <= 0 || status_) return false;
    int wstatus = 0;
    pid_t r = ::waitpid(pid_, &wstatus, WNOHANG);
    if (r == pid_) {
        status_ = decode(wstatus);
        return false;
    }
    if (r < 0 && errno == ECHILD) {
        status_ = exit_status{};
        return false;
    }
    return true;
}

void child_process::send_signal(int sig) {
    if (running()) ::kill(pid_, sig);
}

std::optional<exit_status> child_process::wait_for(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return status_;
}

exit_status child_process::stop(int sig, std::chrono::milliseconds grace, bool* timed_out) {
    if (timed_out != nullptr) *timed_out = false;
    if (pid_ <= 0) return status_.value_or(exit_status{});
    send_signal(sig);
    if (auto st = wait_for(grace)) {
        // The leader is gone; take any straggler of its group with it.
        ::kill(-pid_, SIGKILL);
        return *st;
    }
    if (timed_out != nullptr) *timed_out = true;
    kill_group_and_reap();
    return status_.value_or(exit_status{});
}

void child_process::kill_group_and_reap() noexcept {
    if (pid_ <= 0) return;
    if (!status_) {
        ::kill(-pid_, SIGKILL);
        ::kill(pid_, SIGKILL);
        int wstatus = 0;
        pid_t r;
        do {
            r = ::waitpid(pid_, &wstatus, 0);
        } while (r < 0 && errno == EINTR);
        status_ = r == pid_ ? decode(wstatus) : exit_status{};
    }
}

command_result run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                           const std::string& run_as, const std::filesystem::path& working_dir,
                           const std::vector<std::string>& extra_env) {
    temp_dir dir("sluice-cmd-");
    if (!run_as.empty() && ::geteuid() == 0) {
        auto ids = ensure_user(run_as);
        dir.chown_to(ids.uid, ids.gid);
    }
    auto log = dir / "output.log";
    command_result result;
    {
        child_process child(spawn_options{argv, log, run_as, working_dir, SIGKILL, extra_env});
        if (auto st = child.wait_for(timeout)) {
            result.status = *st;
        } else {
            result.timed_out = true;
            result.status = child.stop(SIGKILL, std::chrono::seconds(5));
        }
    }
    result.output = read_file(log);
    return result;
}

}  // namespace sluice::it
