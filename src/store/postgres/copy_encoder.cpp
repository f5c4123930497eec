#include "copy_encoder.hpp"

#include <bit>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <type_traits>
#include <variant>

#include "sluice/core/clock.hpp"
#include "sluice/store/newest_of_each_key.hpp"

namespace sluice::pg {

void append_copy_text(std::string& out, std::string_view s) {
    for (char c : s) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '\t': out += "\\t"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            default: out += c;
        }
    }
}

void append_copy_value(std::string& out, field_type type, const value& v) {
    std::visit(
        [&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, std::monostate>) {
                out += "\\N";
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                if (type == field_type::timestamp)
                    out += format_rfc3339_ms(x);
                else
                    out += std::to_string(x);
            } else if constexpr (std::is_same_v<T, double>) {
                // Shortest text that reads back as the same double (what the JSON text was).
                char buf[32];
                auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
                if (ec == std::errc{} && std::isfinite(x))
                    out.append(buf, end);
                else
                    out += nlohmann::json(x).dump();
            } else if constexpr (std::is_same_v<T, bool>) {
                out += x ? 't' : 'f';
            } else {
                append_copy_text(out, x);
            }
        },
        v);
}

void put_be(std::string& out, std::uint64_t v, int bytes) {
    for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

void put_null(std::string& out) { put_be(out, 0xffffffffu, 4); }

void put_text(std::string& out, std::string_view s) {
    put_be(out, s.size(), 4);
    out += s;
}

bool put_timestamptz(std::string& out, std::int64_t ms) {
    std::int64_t us = 0;
    if (__builtin_sub_overflow(ms, pg_epoch_ms, &us) || __builtin_mul_overflow(us, 1000, &us)) return false;
    put_be(out, 8, 4);
    put_be(out, static_cast<std::uint64_t>(us), 8);
    return true;
}

bool append_binary_value(std::string& out, field_type type, const value& v) {
    if (std::holds_alternative<std::monostate>(v)) {
        put_null(out);
        return true;
    }
    switch (type) {
        case field_type::int64:
            if (const auto* i = std::get_if<std::int64_t>(&v)) {
                put_be(out, 8, 4);
                put_be(out, static_cast<std::uint64_t>(*i), 8);
                return true;
            }
            return false;
        case field_type::timestamp:
            if (const auto* i = std::get_if<std::int64_t>(&v)) return put_timestamptz(out, *i);
            return false;
        case field_type::float64: {
            double d = 0;
            if (const auto* x = std::get_if<double>(&v))
                d = *x;
            else if (const auto* i = std::get_if<std::int64_t>(&v))
                d = static_cast<double>(*i);  // as PostgreSQL reads the integer's text
            else
                return false;
            put_be(out, 8, 4);
            put_be(out, std::bit_cast<std::uint64_t>(d), 8);
            return true;
        }
        case field_type::boolean:
            if (const auto* b = std::get_if<bool>(&v)) {
                put_be(out, 1, 4);
                out += *b ? '\1' : '\0';
                return true;
            }
            return false;
        case field_type::string:
            if (const auto* str = std::get_if<std::string>(&v)) {
                put_text(out, *str);
                return true;
            }
            return false;
        case field_type::json:
            if (const auto* str = std::get_if<std::string>(&v)) {
                put_be(out, str->size() + 1, 4);
                out += '\1';  // jsonb's binary form: version 1, then the text
                out += *str;
                return true;
            }
            return false;
    }
    return false;
}

copy_encoder::copy_encoder(const config& cfg) : cfg_(cfg) {
    columns_.reserve(cfg.feature_sets.size());
    for (const auto& set : cfg.feature_sets) columns_.push_back(latest_columns(set));
}

batch_copy copy_encoder::encode(const write_batch& batch, bool fast) const {
    const std::size_t sets = cfg_.feature_sets.size();
    batch_copy text{std::vector<std::string>(sets), std::vector<std::string>(sets)};
    if (!fast) {
        for (const auto& r : batch.records) append_row(text.temp[r.set_index], r, /*with_aggregations=*/true);
        return text;
    }
    std::vector<char> is_newest(batch.records.size(), 0);
    for (const record* r : newest_of_each_key(batch.records))
        is_newest[static_cast<std::size_t>(r - batch.records.data())] = 1;
    if (auto binary = encode_binary(batch, is_newest)) return std::move(*binary);
    // Each row is formatted once: the newest of its key is copied on for latest, with the
    // aggregations after it.
    for (std::size_t i = 0; i < batch.records.size(); ++i) {
        const record& r = batch.records[i];
        auto& history = text.history[r.set_index];
        const std::size_t start = history.size();
        append_row(history, r, /*with_aggregations=*/false);
        if (!is_newest[i]) continue;
        auto& temp = text.temp[r.set_index];
        temp.append(history, start, history.size() - start - 1);  // without its newline
        append_aggregations(temp, r);
        temp += '\n';
    }
    return text;
}

std::optional<batch_copy> copy_encoder::encode_binary(const write_batch& batch,
                                                      const std::vector<char>& is_newest) const {
    const std::size_t sets = cfg_.feature_sets.size();
    batch_copy text{std::vector<std::string>(sets), std::vector<std::string>(sets), /*binary=*/true};
    for (std::size_t i = 0; i < batch.records.size(); ++i) {
        const record& r = batch.records[i];
        auto& history = text.history[r.set_index];
        if (history.empty()) history = copy_binary_header;
        const std::size_t start = history.size();
        if (!append_binary_row(history, r)) return std::nullopt;
        if (!is_newest[i]) continue;
        // The same row for the temporary table, with the aggregations after it.
        auto& temp = text.temp[r.set_index];
        if (temp.empty()) temp = copy_binary_header;
        const std::size_t row = temp.size();
        temp.append(history, start, history.size() - start);
        const auto& columns = columns_[r.set_index];
        const std::size_t fields = cfg_.feature_sets[r.set_index].fields.size();
        std::string count;
        put_be(count, 6 + columns.size(), 2);
        temp.replace(row, 2, count);
        for (std::size_t c = fields; c < columns.size(); ++c) {
            if (c >= r.values.size())
                put_null(temp);
            else if (!append_binary_value(temp, columns[c].type, r.values[c]))
                return std::nullopt;
        }
    }
    for (std::size_t i = 0; i < sets; ++i) {
        if (!text.history[i].empty()) put_be(text.history[i], 0xffff, 2);
        if (!text.temp[i].empty()) put_be(text.temp[i], 0xffff, 2);
    }
    return text;
}

bool copy_encoder::append_binary_row(std::string& out, const record& r) const {
    const auto& set = cfg_.feature_sets[r.set_index];
    put_be(out, 6 + set.fields.size(), 2);
    put_text(out, r.key);
    if (!put_timestamptz(out, r.event_time_ms)) return false;
    for (std::size_t i = 0; i < set.fields.size(); ++i) {
        if (!append_binary_value(out, set.fields[i].type, i < r.values.size() ? r.values[i] : value{})) return false;
    }
    if (!put_timestamptz(out, r.ingested_at_ms)) return false;
    if (r.source.topic.empty()) {
        put_null(out);
    } else {
        put_text(out, r.source.topic);
    }
    if (r.source.from_kafka()) {
        put_be(out, 4, 4);
        put_be(out, static_cast<std::uint32_t>(r.source.partition), 4);
        put_be(out, 8, 4);
        put_be(out, static_cast<std::uint64_t>(r.source.offset), 8);
    } else {
        put_null(out);
        put_null(out);
    }
    return true;
}

void copy_encoder::append_row(std::string& out, const record& r, bool with_aggregations) const {
    const auto& set = cfg_.feature_sets[r.set_index];
    append_copy_text(out, r.key);
    out += '\t';
    out += format_rfc3339_ms(r.event_time_ms);
    for (std::size_t i = 0; i < set.fields.size(); ++i) {
        out += '\t';
        append_copy_value(out, set.fields[i].type, r.values[i]);
    }
    out += '\t';
    out += format_rfc3339_ms(r.ingested_at_ms);
    if (r.source.from_kafka()) {
        out += '\t';
        append_copy_text(out, r.source.topic);
        out += '\t' + std::to_string(r.source.partition) + '\t' + std::to_string(r.source.offset);
    } else if (!r.source.topic.empty()) {  // pushed over HTTP: the source is named, no offset
        out += '\t';
        append_copy_text(out, r.source.topic);
        out += "\t\\N\t\\N";
    } else {
        out += "\t\\N\t\\N\t\\N";
    }
    if (with_aggregations) append_aggregations(out, r);
    out += '\n';
}

void copy_encoder::append_aggregations(std::string& out, const record& r) const {
    const auto& columns = columns_[r.set_index];
    for (std::size_t i = cfg_.feature_sets[r.set_index].fields.size(); i < columns.size(); ++i) {
        out += '\t';
        if (i < r.values.size())
            append_copy_value(out, columns[i].type, r.values[i]);
        else
            out += "\\N";
    }
}

}  // namespace sluice::pg
