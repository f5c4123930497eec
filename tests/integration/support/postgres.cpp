#include "integration/support/postgres.hpp"

#include <libpq-fe.h>

#include <csignal>
#include <stdexcept>
#include <thread>

#include "integration/support/net.hpp"

namespace sluice::it {

namespace {

const std::string pg_bin = "/usr/lib/postgresql/15/bin/";
const std::string pg_user = "postgres";

std::string with_timeout(const std::string& dsn) { return dsn + " connect_timeout=5"; }

}  // namespace

postgres_server::postgres_server() : dir_("sluice-pg-"), port_(free_port()) {
    if (::geteuid() == 0) {
        auto ids = ensure_user(pg_user);
        dir_.chown_to(ids.uid, ids.gid);
    }
    auto init = run_command({pg_bin + "initdb", "-D", (dir_ / "data").string(), "-A", "trust", "-U", pg_user,
                             "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"},
                            std::chrono::seconds(120), pg_user, dir_.path());
    if (!init.status.ok()) {
        throw std::runtime_error("initdb failed (" + init.status.describe() + "):\n" + init.output);
    }
    start();
    pg_query(dsn("postgres"), "CREATE DATABASE sluice");
}

postgres_server::~postgres_server() {
    try {
        stop(std::chrono::seconds(10));
    } catch (...) {
    }
}

void postgres_server::start(std::chrono::seconds timeout) {
    if (running()) return;
    const std::string log = (dir_ / "postgres.log").string();
    proc_.emplace(spawn_options{
        {pg_bin + "postgres", "-D", (dir_ / "data").string(), "-p", std::to_string(port_), "-k", dir_.path().string(),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
         "-c", "max_connections=200"},
        log, pg_user, dir_.path(),
        SIGQUIT,  // immediate shutdown if the test binary dies
        {}});
    wait_ready(timeout);
}

void postgres_server::wait_ready(std::chrono::seconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::string conninfo = with_timeout(dsn("postgres"));
    for (;;) {
        if (PQping(conninfo.c_str()) == PQPING_OK) return;
        if (!running()) {
            throw std::runtime_error("postgres exited (" + proc_->status()->describe() + "):\n" + log_tail());
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            throw std::runtime_error("postgres did not accept connections in time:\n" + log_tail());
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

void postgres_server::stop(std::chrono::seconds grace) {
    if (!proc_) return;
    proc_->stop(SIGINT, grace);
    proc_.reset();
}

void postgres_server::kill9() {
    if (!proc_) return;
    proc_->stop(SIGKILL, std::chrono::seconds(10));
    proc_.reset();
    // Backends notice the postmaster's death themselves; the group kill above already ended
    // them. Give the kernel a moment to release the port before a restart.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

bool postgres_server::running() { return proc_ && proc_->running(); }

std::string postgres_server::dsn(const std::string& db) const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + db + " user=" + pg_user;
}

std::string postgres_server::log_tail(std::size_t max_bytes) const { return file_tail(dir_ / "postgres.log", max_bytes); }

pg_client::pg_client(const std::string& dsn) {
    conn_ = PQconnectdb(with_timeout(dsn).c_str());
    if (PQstatus(conn_) != CONNECTION_OK) {
        std::string err = PQerrorMessage(conn_);
        PQfinish(conn_);
        conn_ = nullptr;
        throw std::runtime_error("connect to PostgreSQL (" + dsn + "): " + err);
    }
}

pg_client::~pg_client() {
    if (conn_ != nullptr) PQfinish(conn_);
}

pg_rows pg_client::query(const std::string& sql, const std::vector<std::string>& params) {
    std::vector<const char*> values;
    for (const auto& p : params) values.push_back(p.c_str());
    PGresult* res = PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                 values.empty() ? nullptr : values.data(), nullptr, nullptr, 0);
    auto status = PQresultStatus(res);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
        std::string err = PQresultErrorMessage(res);
        PQclear(res);
        throw std::runtime_error("query failed: " + sql + ": " + err);
    }
    pg_rows rows;
    const int n = PQntuples(res);
    const int m = PQnfields(res);
    rows.reserve(static_cast<std::size_t>(n));
    for (int r = 0; r < n; ++r) {
        std::vector<std::string> row;
        row.reserve(static_cast<std::size_t>(m));
        for (int c = 0; c < m; ++c) {
            row.emplace_back(PQgetisnull(res, r, c) ? std::string(pg_null)
                                                    : std::string(PQgetvalue(res, r, c),
                                                                  static_cast<std::size_t>(PQgetlength(res, r, c))));
        }
        rows.push_back(std::move(row));
    }
    PQclear(res);
    return rows;
}

std::string pg_client::scalar(const std::string& sql, const std::vector<std::string>& params) {
    auto rows = query(sql, params);
    if (rows.size() != 1 || rows[0].size() != 1) {
        throw std::runtime_error("expected one value from: " + sql + ", got " + std::to_string(rows.size()) + " rows");
    }
    return rows[0][0];
}

pg_rows pg_query(const std::string& dsn, const std::string& sql, const std::vector<std::string>& params) {
    pg_client client(dsn);
    return client.query(sql, params);
}

long long pg_count(const std::string& dsn, const std::string& sql, const std::vector<std::string>& params) {
    try {
        auto rows = pg_query(dsn, sql, params);
        if (rows.empty() || rows[0].empty() || rows[0][0] == pg_null) return -1;
        return std::stoll(rows[0][0]);
    } catch (const std::exception&) {
        return -1;
    }
}

}  // namespace sluice::it
