// sluice: parse the CLI, load the config (or describe its schema), start the daemon, wait for a signal, drain.

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sluice/app/daemon.hpp"
#include "sluice/app/definition_commands.hpp"
#include "sluice/app/export_command.hpp"
#include "sluice/app/feast_definitions.hpp"
#include "sluice/config/loader.hpp"
#include "sluice/config/schema.hpp"
#include "sluice/core/log.hpp"
#include "sluice/core/timestamp.hpp"

namespace {

void usage(std::FILE* out) {
    std::fprintf(out,
                 "usage: sluice --config FILE            run the daemon\n"
                 "       sluice --config FILE --check    validate the config and exit 0, or print every error and exit 1\n"
                 "       sluice --describe-config [--json]  every config key: type, default, bounds, description\n"
                 "       sluice plan --config FILE [--json]  diff FILE against its environment's registry:\n"
                 "                                          exit 0 ok, 3 breaking, 1 error\n"
                 "       sluice promote --from STAGING_CONFIG --to PRODUCTION_CONFIG [--window 1h]\n"
                 "                      [--max-dead-letter-rate 0.01] [--json]   exit 0 ready, 3 blocked, 1 error\n"
                 "       sluice drop --config FILE --set S --version N [--yes]   drop a retired version\n"
                 "       sluice quality --config FILE --set S [--from T] [--to T] [--window 1h] [--json]\n"
                 "                      the set's data quality gate: exit 0 passed, 3 failed, 1 error\n"
                 "       sluice try --config FILE --set S[@N] [--records N | --seconds T] [--from-start]\n"
                 "                  [--brokers HOST:PORT] [--json]   parse live data, write nothing\n"
                 "       sluice export --config FILE --features S:F[,S:F...] (--entities FILE.csv|FILE.ndjson|- |\n"
                 "                     --entity-query SQL | --entity-table T) --output FILE.csv|FILE.ndjson|-\n"
                 "                     [--as-known-at] [--full-feature-names] [--statuses] [--timestamp-column C]\n"
                 "                     [--entity-format csv|ndjson] [--format csv|ndjson] [--no-progress]\n"
                 "                     a point-in-time training set: exit 0 written, 1 error\n"
                 "       sluice feast-definitions --config FILE   Feast repository objects describing the feature sets\n"
                 "       sluice --version\n");
}

// The lifecycle commands: `sluice plan|promote|drop ...`.
int run_command(const std::string& command, int argc, char** argv) {
    std::string config_path, set, from, to;
    std::int64_t version = 0;
    bool json = false, yes = false;
    sluice::promote_options promote;
    sluice::try_options sandbox;
    sluice::quality_options quality;
    sluice::export_options exporting;
    const auto fail = [&](const std::string& why) {
        std::fprintf(stderr, "sluice %s: %s\n", command.c_str(), why.c_str());
        usage(stderr);
        return sluice::exit_usage;
    };
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--json") {
            json = true;
        } else if (arg == "--yes" && command == "drop") {
            yes = true;
        } else if (command == "export" && arg != "--config") {
            auto value = [&]() -> std::string { return argv[++i]; };
            if ((arg == "--features" || arg == "--feature") && has_value) {
                const std::string list = value();
                std::size_t start = 0;
                while (start <= list.size()) {
                    const auto comma = list.find(',', start);
                    const auto f = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
                    if (!f.empty()) exporting.features.push_back(f);
                    if (comma == std::string::npos) break;
                    start = comma + 1;
                }
            } else if (arg == "--entities" && has_value) {
                exporting.entities = value();
            } else if (arg == "--entity-format" && has_value) {
                exporting.entity_format = value();
            } else if (arg == "--entity-query" && has_value) {
                exporting.entity_query = value();
            } else if (arg == "--entity-table" && has_value) {
                exporting.entity_table = value();
            } else if (arg == "--output" && has_value) {
                exporting.output = value();
            } else if (arg == "--format" && has_value) {
                exporting.format = value();
            } else if (arg == "--timestamp-column" && has_value) {
                exporting.timestamp_column = value();
            } else if (arg == "--as-known-at") {
                exporting.as_known_at = true;
            } else if (arg == "--full-feature-names") {
                exporting.full_feature_names = true;
            } else if (arg == "--statuses") {
                exporting.statuses = true;
            } else if (arg == "--no-progress") {
                exporting.progress = false;
            } else {
                return fail("unknown argument '" + arg + "'");
            }
        } else if (arg == "--config" && has_value && command != "promote") {
            config_path = argv[++i];
        } else if (arg == "--from" && has_value && command == "promote") {
            from = argv[++i];
        } else if (arg == "--to" && has_value && command == "promote") {
            to = argv[++i];
        } else if (arg == "--window" && has_value && (command == "promote" || command == "quality")) {
            std::int64_t& window = command == "promote" ? promote.window_ms : quality.window_ms;
            if (!sluice::parse_duration_ms(argv[++i], window) || window <= 0)
                return fail(std::string("--window takes a duration such as 1h, got ") + argv[i]);
        } else if ((arg == "--from" || arg == "--to") && has_value && command == "quality") {
            const auto t = sluice::parse_timestamp_text(argv[++i]);
            if (!t) return fail(arg + " takes an RFC 3339 time, got " + argv[i]);
            (arg == "--from" ? quality.from_ms : quality.to_ms) = *t;
        } else if (arg == "--max-dead-letter-rate" && has_value && command == "promote") {
            char* end = nullptr;
            promote.max_dead_letter_rate = std::strtod(argv[++i], &end);
            if (!end || *end || promote.max_dead_letter_rate < 0 || promote.max_dead_letter_rate > 1)
                return fail(std::string("--max-dead-letter-rate takes a fraction 0..1, got ") + argv[i]);
        } else if (arg == "--from-start" && command == "try") {
            sandbox.from_start = true;
        } else if ((arg == "--records" || arg == "--seconds") && has_value && command == "try") {
            char* end = nullptr;
            const long long n = std::strtoll(argv[++i], &end, 10);
            if (!end || *end || n < 1) return fail(arg + " takes a positive number, got " + argv[i]);
            (arg == "--records" ? sandbox.records : sandbox.seconds) = n;
            if (arg == "--seconds" && sandbox.records == 1000) sandbox.records = 10000000;
        } else if (arg == "--brokers" && has_value && command == "try") {
            sandbox.brokers = argv[++i];
        } else if (arg == "--set" && has_value && (command == "drop" || command == "try" || command == "quality")) {
            set = argv[++i];
        } else if (arg == "--version" && has_value && command == "drop") {
            char* end = nullptr;
            version = std::strtoll(argv[++i], &end, 10);
            if (!end || *end || version < 1) return fail(std::string("--version takes a version number, got ") + argv[i]);
        } else {
            return fail("unknown argument '" + arg + "'");
        }
    }
    // Only what the command prints goes to stdout; the stores' own log lines stay quiet.
    spdlog::set_level(spdlog::level::warn);
    if (command == "plan") {
        if (config_path.empty()) return fail("--config FILE is required");
        return sluice::run_plan(config_path, json);
    }
    if (command == "promote") {
        if (from.empty() || to.empty()) return fail("--from and --to are required");
        promote.from = from;
        promote.to = to;
        promote.json = json;
        return sluice::run_promote(promote);
    }
    if (command == "quality") {
        if (config_path.empty() || set.empty()) return fail("--config and --set are required");
        quality.config_path = config_path;
        quality.set = set;
        quality.json = json;
        return sluice::run_quality(quality);
    }
    if (command == "feast-definitions") {
        if (config_path.empty()) return fail("--config FILE is required");
        return sluice::run_feast_definitions(config_path);
    }
    if (command == "export") {
        if (config_path.empty() || exporting.features.empty() || exporting.output.empty())
            return fail("--config, --features and --output are required");
        exporting.config_path = config_path;
        return sluice::run_export(exporting);
    }
    if (command == "try") {
        if (config_path.empty() || set.empty()) return fail("--config and --set are required");
        sandbox.config_path = config_path;
        sandbox.set = set;
        sandbox.json = json;
        return sluice::run_try(sandbox);
    }
    if (config_path.empty() || set.empty() || version == 0) return fail("--config, --set and --version are required");
    return sluice::run_drop(config_path, set, version, yes);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1) {
        const std::string command = argv[1];
        if (command == "plan" || command == "promote" || command == "drop" || command == "try" || command == "quality" ||
            command == "export" || command == "feast-definitions")
            return run_command(command, argc, argv);
    }
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
    sigaddset(&signals, SIGHUP);
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
    // SIGHUP reloads the config (as POST /v1/admin/reload does); SIGTERM or SIGINT ends the run.
    while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) d.reload("system", "");
    log->info("received {}, draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    const bool complete = d.stop();
    return finish(complete ? 0 : 1);
}
