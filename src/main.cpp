// sluice: parse the CLI, load the config (or describe its schema), start the daemon, wait for a signal, drain.

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sluice/app/daemon.hpp"
#include "sluice/config/loader.hpp"
#include "sluice/config/schema.hpp"
#include "sluice/core/log.hpp"

namespace {

void usage(std::FILE* out) {
    std::fprintf(out,
                 "usage: sluice --config FILE            run the daemon\n"
                 "       sluice --config FILE --check    validate the config and exit 0, or print every error and exit 1\n"
                 "       sluice --describe-config [--json]  every config key: type, default, bounds, description\n"
                 "       sluice --version\n");
}

}  // namespace

int main(int argc, char** argv) {
    std::string config_path;
    bool check = false;
    bool describe_config = false;
    bool json_output = false;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--version") {
            std::printf("sluice %s\n", SLUICE_VERSION);
            return 0;
        } else if (arg == "--check") {
            check = true;
        } else if (arg == "--describe-config") {
            describe_config = true;
        } else if (arg == "--json") {
            json_output = true;
        } else if (arg == "--config" && i + 1 < argc) {
            config_path = argv[++i];
        } else if (arg.rfind("--config=", 0) == 0) {
            config_path = arg.substr(9);
        } else if (arg == "--help" || arg == "-h") {
            usage(stdout);
            return 0;
        } else {
            std::fprintf(stderr, "sluice: unknown argument '%s'\n", arg.c_str());
            usage(stderr);
            return 2;
        }
    }
    if (describe_config) {
        // The schema, not a file's contents: a config path would suggest otherwise.
        if (!config_path.empty() || check) {
            std::fprintf(stderr, "sluice: --describe-config takes no --config or --check\n");
            usage(stderr);
            return 2;
        }
        const std::string text = json_output ? sluice::describe_config_json() : sluice::describe_config_text();
        std::fwrite(text.data(), 1, text.size(), stdout);
        return 0;
    }
    if (json_output) {
        std::fprintf(stderr, "sluice: --json goes with --describe-config\n");
        usage(stderr);
        return 2;
    }
    if (config_path.empty()) {
        usage(stderr);
        return 2;
    }

    auto loaded = sluice::load_config_file(config_path);
    if (!loaded.ok()) {
        std::fprintf(stderr, "%s: %zu error(s)\n%s", config_path.c_str(), loaded.errors.size(),
                     sluice::format_errors(loaded.errors).c_str());
        return 1;
    }
    if (check) {
        std::printf("%s: ok\n", config_path.c_str());
        return 0;
    }

    // Signals are taken by sigwait on this thread only: block them before any thread starts.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    sluice::setup_logging(loaded.cfg.log);
    const auto& log = sluice::module_logger(sluice::log_module::main);
    sluice::daemon d(loaded.cfg);
    // The exit code after d.stop().
    const auto finish = [&d](int code) {
        if (d.left_threads_running()) {
            // librdkafka threads may still log: flush without tearing the loggers down, and end
            // without the destructors and exit handlers they could race with.
            spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
            std::fflush(nullptr);
            std::_Exit(1);
        }
        spdlog::shutdown();
        return code;
    };
    if (auto s = d.start(); !s) {
        log->critical("start failed: {}", s.message());
        d.stop();
        return finish(1);
    }
    int sig = 0;
    sigwait(&signals, &sig);
    log->info("received {}, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    const bool complete = d.stop();
    return finish(complete ? 0 : 1);
}
