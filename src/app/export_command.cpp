// Training-set exports: the daemon's (POST /v1/training-sets, on threads of their own) and
// `sluice export` (to a file, with a progress bar).

#include "sluice/app/export_command.hpp"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "sluice/config/loader.hpp"
#include "sluice/core/log.hpp"
#include "sluice/store/history_join.hpp"

namespace sluice {

namespace {

// The entity rows of an input: the body (or a file), inline text, or PostgreSQL.
result<std::unique_ptr<entity_reader>> open_rows(const config& cfg, const training_plan& plan, training_input::kind from,
                                                 table_format format, const std::string& text, byte_source bytes,
                                                 const std::string& dsn, std::uint64_t* total) {
    using out_t = result<std::unique_ptr<entity_reader>>;
    const auto line = static_cast<std::size_t>(cfg.training.max_line_bytes);
    switch (from) {
        case training_input::kind::body:
            return format == table_format::csv ? csv_entity_reader(std::move(bytes), plan.columns, line)
                                               : ndjson_entity_reader(std::move(bytes), plan.columns, line);
        case training_input::kind::inline_rows: {
            auto data = std::make_shared<std::string>(text);
            auto pos = std::make_shared<std::size_t>(0);
            byte_source from_text = [data, pos](char* buf, std::size_t cap) -> result<std::size_t> {
                const std::size_t n = std::min(cap, data->size() - *pos);
                std::memcpy(buf, data->data() + *pos, n);
                *pos += n;
                return n;
            };
            return ndjson_entity_reader(std::move(from_text), plan.columns, line);
        }
        case training_input::kind::query:
        case training_input::kind::table: {
            auto cursor = open_postgres_cursor(dsn, from == training_input::kind::query ? text : std::string(),
                                               from == training_input::kind::table ? text : std::string(),
                                               cfg.training.statement_timeout_ms, total);
            if (!cursor) return out_t::failure(cursor.message(), cursor.kind());
            return cursor_entity_reader(std::move(cursor.value()), plan.columns);
        }
    }
    return out_t::failure("no entity rows");
}

std::string features_text(const training_plan& plan) {
    std::string out;
    for (const auto& f : plan.request.features) out += (out.empty() ? "" : ",") + f;
    return out;
}

}  // namespace

training_exports::training_exports(std::string dsn, activity_recorder* activity)
    : dsn_(std::move(dsn)), activity_(activity) {}

training_exports::~training_exports() { stop(); }

void training_exports::start(std::shared_ptr<const config> cfg, training_plan plan, training_input input,
                             std::shared_ptr<answer_stream> out, std::string actor, std::string request_id) {
    std::lock_guard lock(mutex_);
    // Threads that ended are joined here, so the list stays as long as the exports running.
    for (auto it = threads_.begin(); it != threads_.end();) {
        const auto done = std::find(finished_.begin(), finished_.end(), it->get_id());
        if (done == finished_.end()) {
            ++it;
            continue;
        }
        finished_.erase(done);
        it->join();
        it = threads_.erase(it);
    }
    if (stopping_.load()) return out->refuse(503, "unavailable", "the daemon is stopping");
    if (running_.load() >= static_cast<std::size_t>(cfg->training.max_concurrent))
        return out->refuse(429, "too_many_exports",
                           "training.max_concurrent (" + std::to_string(cfg->training.max_concurrent) +
                               ") training sets are being exported; retry when one ends");
    running_.fetch_add(1);
    threads_.emplace_back([this, cfg = std::move(cfg), plan = std::move(plan), input = std::move(input),
                           out = std::move(out), actor = std::move(actor), request_id = std::move(request_id)]() mutable {
        // Below the serving threads: an export takes what CPU the live path leaves.
        ::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 10);
        run(std::move(cfg), std::move(plan), std::move(input), std::move(out), std::move(actor), std::move(request_id));
        std::lock_guard finished_lock(mutex_);
        finished_.push_back(std::this_thread::get_id());
    });
}

void training_exports::stop() {
    stopping_.store(true);
    std::list<std::thread> threads;
    {
        std::lock_guard lock(mutex_);
        threads.swap(threads_);
    }
    for (auto& t : threads)
        if (t.joinable()) t.join();
}

void training_exports::run(std::shared_ptr<const config> cfg, training_plan plan, training_input input,
                           std::shared_ptr<answer_stream> out, std::string actor, std::string request_id) {
    const auto log = module_logger(log_module::http);
    activity_event e;
    e.actor = std::move(actor);
    e.action = "training_set";
    e.target = features_text(plan);
    e.request_id = request_id;
    bool begun = false;
    // The slot is free before the answer's end reaches the client, who may start the next export
    // at once.
    bool released = false;
    auto release = [&] {
        if (!released) running_.fetch_sub(1);
        released = true;
    };
    struct at_exit {
        std::function<void()> fn;
        ~at_exit() { fn(); }
    } release_anyway{release};
    auto failed = [&](const std::string& message, error_kind kind) {
        release();
        if (!begun) {
            if (message.find("training.body_limit_bytes") != std::string::npos)
                out->refuse(413, "payload_too_large", message);
            else if (kind == error_kind::permanent)
                out->refuse(400, "bad_request", message);
            else
                out->refuse(503, "unavailable", message);
        } else {
            out->abort(message);
        }
        log->warn("training set {}: {} (request_id={})", e.target, message, request_id);
        e.outcome = begun ? "failed" : (kind == error_kind::permanent ? "rejected" : "failed");
        e.detail = {{"error", message}};
        if (activity_) activity_->record(e);
    };
    auto join = open_postgres_history_join(*cfg, dsn_, cfg->training.statement_timeout_ms);
    if (!join) return failed("PostgreSQL: " + join.message(), error_kind::retryable);
    byte_source body = [out](char* buf, std::size_t cap) { return out->read_body(buf, cap); };
    auto rows = open_rows(*cfg, plan, input.from, input.format, input.text, std::move(body), dsn_, nullptr);
    if (!rows) return failed(rows.message(), rows.kind());

    training_sink sink;
    sink.write = [&](std::string_view bytes) {
        if (stopping_.load()) return false;
        if (!begun) {
            begun = true;
            out->begin(content_type_of(plan.request.output),
                       {{"X-Sluice-As-Known-At", plan.request.as_known_at ? "true" : "false"}},
                       {"X-Sluice-Rows", "X-Sluice-Not-Found", "X-Sluice-Expired", "X-Sluice-Elapsed-Ms"});
        }
        return out->write(bytes);
    };
    training_options options;
    options.chunk_rows = static_cast<std::size_t>(cfg->training.chunk_rows);
    auto done = run_training_set(*cfg, plan, *rows.value(), *join.value(), sink, options);
    if (!done) return failed(done.message(), done.kind());
    if (!begun) {  // no rows and no header (NDJSON of nothing): still a 200
        begun = true;
        out->begin(content_type_of(plan.request.output), {}, {"X-Sluice-Rows"});
    }
    const auto& p = done.value();
    release();
    out->finish({{"X-Sluice-Rows", std::to_string(p.rows)},
                 {"X-Sluice-Not-Found", std::to_string(p.not_found)},
                 {"X-Sluice-Expired", std::to_string(p.expired)},
                 {"X-Sluice-Elapsed-Ms", std::to_string(static_cast<std::int64_t>(p.seconds * 1000))}});
    e.detail = {{"rows", p.rows}, {"not_found", p.not_found}, {"expired", p.expired},
                {"as_known_at", plan.request.as_known_at}, {"seconds", std::round(p.seconds * 1000) / 1000}};
    if (activity_) activity_->record(e);
    log->info("training set {}: {} rows in {:.1f} s (request_id={})", e.target, p.rows, p.seconds, request_id);
}

// ---- sluice export ----

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::optional<table_format> format_of_name(const std::string& name) {
    if (ends_with(name, ".csv")) return table_format::csv;
    if (ends_with(name, ".ndjson") || ends_with(name, ".jsonl") || ends_with(name, ".json")) return table_format::ndjson;
    return std::nullopt;
}

std::string grouped(std::uint64_t n) {
    std::string digits = std::to_string(n), out;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

std::string clock_text(double seconds) {
    const auto s = static_cast<std::int64_t>(seconds);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
    return buf;
}

// Data rows of a file: its lines, less a CSV header (an estimate when CSV cells hold line breaks).
std::optional<std::uint64_t> count_rows(const std::string& path, table_format format) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return std::nullopt;
    std::uint64_t lines = 0;
    char buf[1 << 16];
    std::size_t n = 0;
    char last = '\n';
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        for (std::size_t i = 0; i < n; ++i) lines += buf[i] == '\n';
        last = buf[n - 1];
    }
    std::fclose(f);
    if (last != '\n') ++lines;
    if (format == table_format::csv && lines > 0) --lines;
    return lines;
}

}  // namespace

int run_export(const export_options& o) {
    auto fail = [](const std::string& why) {
        std::fprintf(stderr, "sluice export: %s\n", why.c_str());
        return 1;
    };
    auto loaded = load_config_file(o.config_path);
    if (!loaded.ok()) {
        std::fprintf(stderr, "%s: %zu error(s)\n%s", o.config_path.c_str(), loaded.errors.size(),
                     format_errors(loaded.errors).c_str());
        return 1;
    }
    const config& cfg = loaded.cfg;
    if (!cfg.postgres) return fail("the config has no \"postgres\" section: training sets are read from history");
    const int sources = int(!o.entities.empty()) + int(!o.entity_query.empty()) + int(!o.entity_table.empty());
    if (sources != 1) return fail("give the entity rows as exactly one of --entities, --entity-query, --entity-table");

    training_request request;
    request.features = o.features;
    request.full_feature_names = o.full_feature_names;
    request.as_known_at = o.as_known_at;
    request.statuses = o.statuses;
    request.timestamp_column = o.timestamp_column;
    if (!o.format.empty()) {
        auto f = table_format_from(o.format);
        if (!f) return fail("--format takes csv or ndjson");
        request.output = *f;
    } else if (auto f = format_of_name(o.output)) {
        request.output = *f;
    }
    // S@N names a version; a bare name the version the config pins, else its newest version.
    version_switch versions(cfg);
    auto plan = plan_training_set(cfg, request, [&](std::string_view name) { return versions.resolve(name); });
    if (!plan) return fail(plan.message());

    training_input::kind from = training_input::kind::body;
    table_format in_format = table_format::ndjson;
    std::optional<std::uint64_t> total;
    std::FILE* in = nullptr;
    if (!o.entities.empty()) {
        if (!o.entity_format.empty()) {
            auto f = table_format_from(o.entity_format);
            if (!f) return fail("--entity-format takes csv or ndjson");
            in_format = *f;
        } else if (o.entities != "-") {
            auto f = format_of_name(o.entities);
            if (!f) return fail("cannot tell the format of " + o.entities + " from its name: add --entity-format csv|ndjson");
            in_format = *f;
        }
        in = o.entities == "-" ? stdin : std::fopen(o.entities.c_str(), "rb");
        if (in == nullptr) return fail("cannot open " + o.entities + ": " + std::strerror(errno));
        if (o.entities != "-") total = count_rows(o.entities, in_format);
    } else {
        from = o.entity_query.empty() ? training_input::kind::table : training_input::kind::query;
    }
    byte_source bytes = [in](char* buf, std::size_t cap) -> result<std::size_t> {
        const std::size_t n = std::fread(buf, 1, cap, in);
        if (n == 0 && std::ferror(in)) return result<std::size_t>::failure(std::string("reading the entity rows: ") + std::strerror(errno));
        return n;
    };
    std::uint64_t counted = 0;
    auto rows = open_rows(cfg, plan.value(), from, in_format, o.entity_query.empty() ? o.entity_table : o.entity_query,
                          std::move(bytes), cfg.postgres->dsn, from == training_input::kind::body ? nullptr : &counted);
    if (!rows) return fail(rows.message());
    if (from != training_input::kind::body) total = counted;
    auto join = open_postgres_history_join(cfg, cfg.postgres->dsn, cfg.training.statement_timeout_ms);
    if (!join) return fail("PostgreSQL: " + join.message());

    // The output: a temporary file beside the target, renamed over it when whole.
    const bool to_stdout = o.output == "-";
    std::string temp;
    std::FILE* out = stdout;
    if (!to_stdout) {
        const std::filesystem::path target(o.output);
        temp = (target.parent_path().empty() ? std::filesystem::path(".") : target.parent_path()).string() + "/." +
               target.filename().string() + ".sluice-XXXXXX";
        const int fd = ::mkstemp(temp.data());
        if (fd < 0) return fail("cannot write beside " + o.output + ": " + std::strerror(errno));
        out = ::fdopen(fd, "wb");
    }
    const bool bar = o.progress && ::isatty(STDERR_FILENO) != 0;
    training_sink sink;
    sink.write = [&](std::string_view b) { return std::fwrite(b.data(), 1, b.size(), out) == b.size(); };
    sink.progress = [&](const training_progress& p) {
        if (!bar) return;
        const double rate = p.seconds > 0 ? static_cast<double>(p.rows) / p.seconds : 0;
        std::string line = "\r" + grouped(p.rows);
        if (p.total) {
            const double pct = *p.total > 0 ? 100.0 * static_cast<double>(p.rows) / static_cast<double>(*p.total) : 100;
            line += " / " + grouped(*p.total) + " rows (" + std::to_string(static_cast<int>(pct)) + "%)";
        } else {
            line += " rows";
        }
        line += "  " + grouped(static_cast<std::uint64_t>(rate)) + " rows/s";
        if (p.total && rate > 0 && *p.total > p.rows)
            line += "  ETA " + clock_text(static_cast<double>(*p.total - p.rows) / rate);
        line += "   ";
        std::fputs(line.c_str(), stderr);
    };
    training_options options;
    options.chunk_rows = static_cast<std::size_t>(cfg.training.chunk_rows);
    options.total_rows = total;
    auto done = run_training_set(cfg, plan.value(), *rows.value(), *join.value(), sink, options);
    if (in != nullptr && in != stdin) std::fclose(in);
    if (bar) std::fputs("\n", stderr);
    const bool flushed = std::fflush(out) == 0 && (to_stdout || ::fsync(::fileno(out)) == 0);
    if (!to_stdout) std::fclose(out);
    if (!done || !flushed) {
        if (!to_stdout) std::filesystem::remove(temp);
        return fail(done ? std::string("writing ") + o.output + " failed: " + std::strerror(errno) : done.message());
    }
    if (!to_stdout) {
        std::error_code ec;
        std::filesystem::rename(temp, o.output, ec);
        if (ec) {
            std::filesystem::remove(temp);
            return fail("cannot rename the export to " + o.output + ": " + ec.message());
        }
    }
    const auto& p = done.value();
    std::fprintf(stderr, "sluice export: %s rows to %s in %.1f s (%s rows/s); %s feature cells null: %s not found, %s expired%s\n",
                 grouped(p.rows).c_str(), to_stdout ? "stdout" : o.output.c_str(), p.seconds,
                 grouped(static_cast<std::uint64_t>(p.seconds > 0 ? static_cast<double>(p.rows) / p.seconds : 0)).c_str(),
                 grouped(p.not_found + p.expired).c_str(), grouped(p.not_found).c_str(), grouped(p.expired).c_str(),
                 request.as_known_at ? " (as known at each row's time)" : "");
    return 0;
}

}  // namespace sluice
