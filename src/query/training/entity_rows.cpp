// Entity rows of a training set: NDJSON, CSV, or a PostgreSQL cursor, read a row at a time from a
// byte source (the request body as it arrives, a file, stdin). Parsers of untrusted input: every
// malformed row is an error naming its row and column, never a crash (fuzz/training_rows_fuzz.cpp).

#include <algorithm>
#include <array>
#include <optional>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/core/timestamp.hpp"
#include "sluice/core/value_codec.hpp"
#include "sluice/query/training_set.hpp"

namespace sluice {
namespace {

using ordered_json = nlohmann::ordered_json;

// Lines of a byte source: '\n' ends a line (a '\r' before it is dropped); the last line may lack it.
class line_reader {
public:
    line_reader(byte_source in, std::size_t max_line) : in_(std::move(in)), max_line_(max_line) {}

    // The next line into `line`; false at the end. A line longer than max_line is an error.
    result<bool> next(std::string& line) {
        line.clear();
        while (true) {
            const char* begin = buf_.data() + pos_;
            const char* end = buf_.data() + len_;
            const char* nl = static_cast<const char*>(std::memchr(begin, '\n', static_cast<std::size_t>(end - begin)));
            const char* stop = nl != nullptr ? nl : end;
            line.append(begin, stop);
            if (line.size() > max_line_)
                return result<bool>::failure("a line is longer than " + std::to_string(max_line_) + " bytes",
                                             error_kind::permanent);
            if (nl != nullptr) {
                pos_ = static_cast<std::size_t>(nl - buf_.data()) + 1;
                if (!line.empty() && line.back() == '\r') line.pop_back();
                return true;
            }
            pos_ = len_ = 0;
            if (eof_) {
                if (line.empty()) return false;
                if (line.back() == '\r') line.pop_back();
                return true;
            }
            auto n = in_(buf_.data(), buf_.size());
            if (!n) return result<bool>::failure(n.message(), n.kind());
            if (n.value() == 0) eof_ = true;
            len_ = n.value();
        }
    }

private:
    byte_source in_;
    std::size_t max_line_;
    std::array<char, 64 * 1024> buf_{};
    std::size_t pos_ = 0, len_ = 0;
    bool eof_ = false;
};

// Where the plan's columns are among a header's names; the rest pass through, in their order.
struct column_map {
    std::vector<std::size_t> entity_at;
    std::size_t timestamp_at = 0;
    std::vector<std::size_t> extra_at;
    std::vector<std::string> extra;

    // `whose`: how an error names the input ("the CSV header", "the entity rows").
    status map(const std::vector<std::string>& names, const entity_columns& columns, const std::string& whose) {
        auto find = [&](const std::string& name) -> std::optional<std::size_t> {
            const auto it = std::find(names.begin(), names.end(), name);
            if (it == names.end()) return std::nullopt;
            return static_cast<std::size_t>(it - names.begin());
        };
        for (const auto& e : columns.entities) {
            auto at = find(e);
            if (!at) return status::failure(whose + " has no entity column \"" + e + "\"", error_kind::permanent);
            entity_at.push_back(*at);
        }
        auto ts = find(columns.timestamp);
        if (!ts) return status::failure(whose + " has no timestamp column \"" + columns.timestamp + "\"", error_kind::permanent);
        timestamp_at = *ts;
        for (std::size_t i = 0; i < names.size(); ++i)
            if (i != timestamp_at && std::find(entity_at.begin(), entity_at.end(), i) == entity_at.end()) {
                extra_at.push_back(i);
                extra.push_back(names[i]);
            }
        return status::success();
    }
};

std::string row_error(std::uint64_t row, const std::string& what) {
    return "entity row " + std::to_string(row) + ": " + what;
}

// The key text of an entity cell given as JSON: a string's content, an integer's digits.
std::optional<std::string> key_of(const ordered_json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_number_integer()) return v.dump();
    return std::nullopt;
}

// The row's timestamp under the daemon's timestamp rule (RFC 3339, epoch ms, epoch s below 10^11).
result<std::int64_t> time_of(const ordered_json& v) {
    std::variant<std::int64_t, timestamp_error> t = timestamp_error::not_a_time;
    if (v.is_string())
        t = epoch_ms_from_text(v.get_ref<const std::string&>());
    else if (v.is_number_integer())
        t = epoch_ms_from_int(v.get<std::int64_t>());
    else if (v.is_number_float())
        t = epoch_ms_from_double(v.get<double>());
    if (const auto* ms = std::get_if<std::int64_t>(&t)) return *ms;
    return result<std::int64_t>::failure(v.dump() + describe(std::get<timestamp_error>(t)), error_kind::permanent);
}

class ndjson_reader final : public entity_reader {
public:
    ndjson_reader(byte_source in, entity_columns columns, std::size_t max_line)
        : lines_(std::move(in), max_line), columns_(std::move(columns)) {}

    result<bool> next(entity_row& row) override {
        while (true) {
            auto more = lines_.next(line_);
            if (!more) return result<bool>::failure(row_error(rows_ + 1, more.message()), more.kind());
            if (!more.value()) return false;
            if (line_.find_first_not_of(" \t") != std::string::npos) break;
        }
        const std::uint64_t n = rows_ + 1;
        auto bad = [n](const std::string& what) { return result<bool>::failure(row_error(n, what), error_kind::permanent); };
        // The JSON library takes a NUL byte for the end of its input: refused before it can cut a line.
        if (line_.find('\0') != std::string::npos) return bad("holds a NUL byte");
        ordered_json obj = ordered_json::parse(line_, nullptr, /*allow_exceptions=*/false);
        if (obj.is_discarded()) return bad("not valid JSON");
        if (!obj.is_object()) return bad("not a JSON object");
        row.entities.assign(columns_.entities.size(), cell{});
        row.keys.assign(columns_.entities.size(), std::string{});
        for (std::size_t i = 0; i < columns_.entities.size(); ++i) {
            const auto it = obj.find(columns_.entities[i]);
            if (it == obj.end() || it->is_null()) return bad("the entity column \"" + columns_.entities[i] + "\" is missing");
            auto key = key_of(*it);
            if (!key) return bad("the entity column \"" + columns_.entities[i] + "\" is not a string or an integer");
            row.keys[i] = std::move(*key);
            row.entities[i] = it->dump();
        }
        const auto ts = obj.find(columns_.timestamp);
        if (ts == obj.end() || ts->is_null()) return bad("the timestamp column \"" + columns_.timestamp + "\" is missing");
        auto at = time_of(*ts);
        if (!at) return bad("the timestamp column \"" + columns_.timestamp + "\": " + at.message());
        row.at_ms = at.value();
        if (rows_ == 0) {
            for (const auto& [name, v] : obj.items())
                if (name != columns_.timestamp &&
                    std::find(columns_.entities.begin(), columns_.entities.end(), name) == columns_.entities.end())
                    extra_.push_back(name);
        }
        row.extra.assign(extra_.size(), "null");
        for (const auto& [name, v] : obj.items()) {
            if (name == columns_.timestamp ||
                std::find(columns_.entities.begin(), columns_.entities.end(), name) != columns_.entities.end())
                continue;
            const auto at_column = std::find(extra_.begin(), extra_.end(), name);
            if (at_column == extra_.end())
                return bad("the column \"" + name + "\" is not in the first row (the first row names the columns)");
            row.extra[static_cast<std::size_t>(at_column - extra_.begin())] = v.dump();
        }
        ++rows_;
        return true;
    }

    const std::vector<std::string>& extra_columns() const override { return extra_; }
    std::uint64_t rows() const override { return rows_; }

private:
    line_reader lines_;
    entity_columns columns_;
    std::string line_;
    std::vector<std::string> extra_;
    std::uint64_t rows_ = 0;
};

// A CSV cell as JSON text: null when empty, a number when it reads as a JSON number, else a string.
cell csv_cell(const std::string& text, bool quoted) {
    if (text.empty() && !quoted) return "null";
    if (!quoted && text.find('\0') == std::string::npos) {  // the JSON library stops at a NUL
        const ordered_json v = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
        if (!v.is_discarded() && v.is_number()) return text;
    }
    cell out;
    append_json_string(out, text);
    return out;
}

class csv_reader final : public entity_reader {
public:
    csv_reader(byte_source in, entity_columns columns, std::size_t max_line)
        : lines_(std::move(in), max_line), columns_(std::move(columns)), max_line_(max_line) {}

    result<bool> next(entity_row& row) override {
        if (!header_done_) {
            auto h = read_header();
            if (!h) return result<bool>::failure(h.message(), h.kind());
            if (!h.value()) return false;
        }
        while (true) {
            auto more = read_record(rows_ + 1);
            if (!more) return more;
            if (!more.value()) return false;
            if (!(fields_.size() == 1 && fields_[0].empty() && !quoted_[0])) break;  // a blank line
        }
        const std::uint64_t n = rows_ + 1;
        auto bad = [n](const std::string& what) { return result<bool>::failure(row_error(n, what), error_kind::permanent); };
        if (fields_.size() != names_.size())
            return bad("has " + std::to_string(fields_.size()) + " cells; the header has " + std::to_string(names_.size()));
        row.entities.resize(columns_.entities.size());
        row.keys.resize(columns_.entities.size());
        for (std::size_t i = 0; i < columns_.entities.size(); ++i) {
            const std::string& text = fields_[map_.entity_at[i]];
            if (text.empty()) return bad("the entity column \"" + columns_.entities[i] + "\" is empty");
            row.keys[i] = text;
            row.entities[i] = csv_cell(text, quoted_[map_.entity_at[i]]);
        }
        const std::string& ts = fields_[map_.timestamp_at];
        if (ts.empty()) return bad("the timestamp column \"" + columns_.timestamp + "\" is empty");
        const auto t = epoch_ms_from_text(ts);
        if (const auto* e = std::get_if<timestamp_error>(&t)) {
            std::string quoted;
            append_json_string(quoted, ts);
            return bad("the timestamp column \"" + columns_.timestamp + "\": " + quoted + describe(*e));
        }
        row.at_ms = std::get<std::int64_t>(t);
        row.extra.resize(map_.extra_at.size());
        for (std::size_t i = 0; i < map_.extra_at.size(); ++i) row.extra[i] = csv_cell(fields_[map_.extra_at[i]], quoted_[map_.extra_at[i]]);
        ++rows_;
        return true;
    }

    const std::vector<std::string>& extra_columns() const override { return map_.extra; }
    std::uint64_t rows() const override { return rows_; }

private:
    result<bool> read_header() {
        auto more = read_record(0);
        if (!more || !more.value()) return more;
        header_done_ = true;
        names_ = fields_;
        if (!names_.empty() && names_[0].rfind("\xEF\xBB\xBF", 0) == 0) names_[0].erase(0, 3);  // a UTF-8 BOM
        for (std::size_t i = 0; i < names_.size(); ++i)
            if (std::find(names_.begin() + static_cast<std::ptrdiff_t>(i) + 1, names_.end(), names_[i]) != names_.end())
                return result<bool>::failure("the CSV header names the column \"" + names_[i] + "\" twice",
                                             error_kind::permanent);
        if (auto s = map_.map(names_, columns_, "the CSV header"); !s) return result<bool>::failure(s.message(), s.kind());
        return true;
    }

    // One record (RFC 4180) into fields_: quoted cells may hold commas, "" and line breaks.
    result<bool> read_record(std::uint64_t row) {
        fields_.clear();
        quoted_.clear();
        auto more = lines_.next(line_);
        if (!more) return result<bool>::failure(row_error(row, more.message()), more.kind());
        if (!more.value()) return false;
        std::string field;
        bool quoted = false, in_quotes = false, after_quote = false;
        std::size_t i = 0;
        while (true) {
            if (i == line_.size()) {
                if (!in_quotes) break;
                // A quoted cell goes on over the line break.
                std::string next;
                auto again = lines_.next(next);
                if (!again) return result<bool>::failure(row_error(row, again.message()), again.kind());
                if (!again.value())
                    return result<bool>::failure(row_error(row, "a quoted cell is not closed"), error_kind::permanent);
                if (field.size() + next.size() > max_line_)
                    return result<bool>::failure(row_error(row, "a record is longer than " + std::to_string(max_line_) + " bytes"),
                                                 error_kind::permanent);
                field += '\n';
                line_ = std::move(next);
                i = 0;
                continue;
            }
            const char c = line_[i++];
            if (in_quotes) {
                if (c == '"') {
                    if (i < line_.size() && line_[i] == '"') {
                        field += '"';
                        ++i;
                    } else {
                        in_quotes = false;
                        after_quote = true;
                    }
                } else {
                    field += c;
                }
            } else if (c == ',') {
                fields_.push_back(std::move(field));
                quoted_.push_back(quoted);
                field.clear();
                quoted = after_quote = false;
            } else if (c == '"' && field.empty() && !quoted) {
                in_quotes = quoted = true;
            } else if (after_quote) {
                return result<bool>::failure(row_error(row, "text after a closing quote"), error_kind::permanent);
            } else if (c == '"') {
                return result<bool>::failure(row_error(row, "a quote inside an unquoted cell"), error_kind::permanent);
            } else {
                field += c;
            }
        }
        fields_.push_back(std::move(field));
        quoted_.push_back(quoted);
        return true;
    }

    line_reader lines_;
    entity_columns columns_;
    std::size_t max_line_;
    bool header_done_ = false;
    std::string line_;
    std::vector<std::string> names_, fields_;
    std::vector<bool> quoted_;
    column_map map_;
    std::uint64_t rows_ = 0;
};

class cursor_reader final : public entity_reader {
public:
    cursor_reader(std::unique_ptr<table_cursor> cursor, entity_columns columns)
        : cursor_(std::move(cursor)), columns_(std::move(columns)) {}

    result<bool> next(entity_row& row) override {
        if (!started_) {
            started_ = true;
            const auto& names = cursor_->columns();
            if (!names.empty())  // no columns: no rows either
                if (auto s = map_.map(names, columns_, "the entity rows"); !s)
                    return result<bool>::failure(s.message(), s.kind());
        }
        auto more = cursor_->next(cells_);
        if (!more || !more.value()) return more;
        const std::uint64_t n = rows_ + 1;
        auto bad = [n](const std::string& what) { return result<bool>::failure(row_error(n, what), error_kind::permanent); };
        row.entities.resize(map_.entity_at.size());
        row.keys.resize(map_.entity_at.size());
        for (std::size_t i = 0; i < map_.entity_at.size(); ++i) {
            const ordered_json v = ordered_json::parse(cells_[map_.entity_at[i]], nullptr, false);
            auto key = key_of(v);
            if (!key) return bad("the entity column \"" + columns_.entities[i] + "\" is null or not a string or an integer");
            row.keys[i] = std::move(*key);
            row.entities[i] = cells_[map_.entity_at[i]];
        }
        const ordered_json ts = ordered_json::parse(cells_[map_.timestamp_at], nullptr, false);
        if (ts.is_null()) return bad("the timestamp column \"" + columns_.timestamp + "\" is null");
        auto at = time_of(ts);
        if (!at) return bad("the timestamp column \"" + columns_.timestamp + "\": " + at.message());
        row.at_ms = at.value();
        row.extra.resize(map_.extra_at.size());
        for (std::size_t i = 0; i < map_.extra_at.size(); ++i) row.extra[i] = cells_[map_.extra_at[i]];
        ++rows_;
        return true;
    }

    const std::vector<std::string>& extra_columns() const override { return map_.extra; }
    std::uint64_t rows() const override { return rows_; }

private:
    std::unique_ptr<table_cursor> cursor_;
    entity_columns columns_;
    bool started_ = false;
    std::vector<std::string> cells_;
    column_map map_;
    std::uint64_t rows_ = 0;
};

}  // namespace

std::unique_ptr<entity_reader> ndjson_entity_reader(byte_source in, entity_columns columns, std::size_t max_line_bytes) {
    return std::make_unique<ndjson_reader>(std::move(in), std::move(columns), max_line_bytes);
}

std::unique_ptr<entity_reader> csv_entity_reader(byte_source in, entity_columns columns, std::size_t max_line_bytes) {
    return std::make_unique<csv_reader>(std::move(in), std::move(columns), max_line_bytes);
}

std::unique_ptr<entity_reader> cursor_entity_reader(std::unique_ptr<table_cursor> cursor, entity_columns columns) {
    return std::make_unique<cursor_reader>(std::move(cursor), std::move(columns));
}

}  // namespace sluice
