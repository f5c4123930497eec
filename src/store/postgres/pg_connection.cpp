#include "pg_connection.hpp"

namespace sluice::pg {

error_kind kind_of_sqlstate(std::string_view sqlstate) {
    if (sqlstate.size() != 5) return error_kind::retryable;  // no answer from the server: it may come back
    const std::string_view cls = sqlstate.substr(0, 2);
    // Data exceptions, integrity violations, syntax and access rules, unsupported features, invalid
    // names and transaction states: the same statement fails the same way again.
    for (const char* never : {"22", "23", "42", "0A", "25", "26", "28", "2B", "2D", "34", "3D", "3F", "44"})
        if (cls == never) return error_kind::permanent;
    // Connection loss, rollbacks (serialization, deadlock), lack of resources, operator
    // intervention (shutdown, statement timeout), lock not available, system errors: may pass.
    return error_kind::retryable;
}

connection::connection(std::string dsn, std::vector<std::string> on_connect)
    : dsn_(std::move(dsn)), on_connect_(std::move(on_connect)) {}

connection::~connection() { reset(); }

void connection::reset() {
    if (conn_) PQfinish(conn_);
    conn_ = nullptr;
}

bool connection::connected() const { return conn_ && PQstatus(conn_) == CONNECTION_OK; }

status connection::ensure() {
    if (connected()) return status::success();
    reset();
    // Our defaults first: settings in the user's DSN (expanded from "dbname") override them.
    const char* keys[] = {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                          "keepalives_count", "tcp_user_timeout", "application_name", "dbname", nullptr};
    const char* values[] = {"5", "1", "10", "5", "3", "10000", "sluice", dsn_.c_str(), nullptr};
    conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
    if (!conn_ || PQstatus(conn_) != CONNECTION_OK) {
        std::string msg = conn_ ? PQerrorMessage(conn_) : "out of memory";
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
        reset();
        return status::failure("cannot connect to PostgreSQL: " + msg);
    }
    for (const auto& sql : on_connect_) {
        auto r = exec(sql);
        if (!r) {
            reset();
            return r.as_status();
        }
    }
    return status::success();
}

status connection::check(PGresult* r, const std::string& what) {
    const auto st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        sqlstate_.clear();
        return status::success();
    }
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    sqlstate_ = state ? state : "";
    std::string msg = r ? PQresultErrorMessage(r) : (conn_ ? PQerrorMessage(conn_) : "no connection");
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    const bool lost = !r || (conn_ && PQstatus(conn_) != CONNECTION_OK);
    if (conn_ && PQstatus(conn_) != CONNECTION_OK) reset();
    return status::failure(what + ": " + msg, lost ? error_kind::retryable : kind_of_sqlstate(sqlstate_));
}

result<result_ptr> connection::exec(const std::string& sql) {
    if (auto s = ensure(); !s) return result<result_ptr>::failure(s);
    result_ptr r(PQexec(conn_, sql.c_str()));
    if (auto s = check(r.get(), "PostgreSQL"); !s) return result<result_ptr>::failure(s);
    return r;
}

result<result_ptr> connection::exec_params(const std::string& sql, const std::vector<const char*>& values,
                                           const std::vector<int>& lengths, const std::vector<int>& formats) {
    if (auto s = ensure(); !s) return result<result_ptr>::failure(s);
    result_ptr r(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                              lengths.empty() ? nullptr : lengths.data(), formats.empty() ? nullptr : formats.data(),
                              0));
    if (auto s = check(r.get(), "PostgreSQL"); !s) return result<result_ptr>::failure(s);
    return r;
}

result<result_ptr> connection::exec_prepared(const std::string& name, const std::vector<const char*>& values) {
    if (auto s = ensure(); !s) return result<result_ptr>::failure(s);
    result_ptr r(PQexecPrepared(conn_, name.c_str(), static_cast<int>(values.size()), values.data(), nullptr, nullptr, 0));
    if (auto s = check(r.get(), "PostgreSQL"); !s) return result<result_ptr>::failure(s);
    return r;
}

status connection::copy_in(const std::string& copy_sql, const std::string& data) {
    if (auto s = ensure(); !s) return s;
    result_ptr r(PQexec(conn_, copy_sql.c_str()));
    if (!r || PQresultStatus(r.get()) != PGRES_COPY_IN) return check(r.get(), "COPY");
    if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1 || PQputCopyEnd(conn_, nullptr) != 1) {
        std::string msg = PQerrorMessage(conn_);
        sqlstate_.clear();
        reset();
        return status::failure("COPY: " + msg);
    }
    result_ptr end(PQgetResult(conn_));
    auto s = check(end.get(), "COPY");
    // Drain whatever else the server sends for this command.
    while (conn_) {
        result_ptr extra(PQgetResult(conn_));
        if (!extra) break;
    }
    return s;
}

std::string quote_ident(const std::string& name) {
    std::string out = "\"";
    for (char c : name) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + '"';
}

}  // namespace sluice::pg
