// The record parser: what a user's Kafka event becomes — a typed record, or a dead letter that
// says why and keeps everything needed to find and replay the message.

#include "sluice/preprocess/record_parser.hpp"

#include "sluice/core/sha256.hpp"
#include "sluice/core/timestamp.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "common/parser_sets.hpp"
#include "common/printable.hpp"
#include "sluice/config/loader.hpp"

namespace sluice {
namespace {

constexpr std::int64_t nov21_10h = 1795255200000;  // 2026-11-21T10:00:00Z

// A message of set 0 from topic "t" at this place, with a Kafka timestamp.
raw_message message_at(std::string payload, std::int32_t partition, std::int64_t offset) {
    raw_message m;
    m.set_index = 0;
    m.source.topic = "t";
    m.source.partition = partition;
    m.source.offset = offset;
    m.kafka_timestamp_ms = nov21_10h + 42;
    m.payload = std::move(payload);
    return m;
}
constexpr std::int64_t now = 1795255260000;
constexpr std::int64_t max_message = 512;

// Field positions in the declared order.
enum : std::size_t { clicks, spend, premium, country, seen_at, extra, big };

field_config field(std::string name, field_type type) {
    field_config f;
    f.name = std::move(name);
    f.type = type;
    return f;
}

config make_config() {
    config cfg;
    cfg.kafka.max_message_bytes = max_message;
    feature_set_config other;
    other.name = "item_stats";
    other.topic = "item-events";
    other.key_field = "item_id";
    other.event_time_field = "time";
    other.fields.push_back(field("views", field_type::int64));
    cfg.feature_sets.push_back(other);

    feature_set_config set;
    set.name = "user_activity";
    set.topic = "user-events";
    set.key_field = "user_id";
    set.event_time_field = "ts";
    auto c = field("clicks", field_type::int64);
    c.required = true;
    c.min = 0;
    c.max = 1000;
    set.fields.push_back(c);
    auto s = field("spend", field_type::float64);
    s.min = 0;
    set.fields.push_back(s);
    set.fields.push_back(field("premium", field_type::boolean));
    auto co = field("country", field_type::string);
    co.default_value = std::string("??");
    set.fields.push_back(co);
    set.fields.push_back(field("seen_at", field_type::timestamp));
    set.fields.push_back(field("extra", field_type::json));
    set.fields.push_back(field("big", field_type::int64));  // no bounds: the int64 range itself
    cfg.feature_sets.push_back(set);
    return cfg;
}

// RFC 3629 UTF-8 with no NUL: what PostgreSQL text and Kafka headers can hold.
bool is_valid_utf8_without_nul(const std::string& s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == 0) return false;
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        std::uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > s.size()) return false;
        for (std::size_t k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

class PreprocessRecordParser : public ::testing::Test {
protected:
    raw_message message(std::string payload) const {
        raw_message m;
        m.set_index = 1;
        m.consumer_index = 0;
        m.source.topic = "user-events";
        m.source.partition = 2;
        m.source.offset = 41;
        m.kafka_timestamp_ms = now - 5;
        m.payload = std::move(payload);
        return m;
    }

    processed parse(const raw_message& m) const { return parser_.parse(m, now); }
    processed parse(std::string payload) const { return parse(message(std::move(payload))); }

    // Parses an event that must become a record; fails the test with the dead letter's reason otherwise.
    record expect_record(std::string payload) const {
        auto p = parse(payload);
        if (auto* d = std::get_if<dead_letter>(&p)) {
            ADD_FAILURE() << "expected a record for " << payload << "\ngot a dead letter: " << d->error;
            return record{};
        }
        return std::get<record>(p);
    }

    // Parses an event that must become a dead letter; checks what every dead letter keeps.
    dead_letter expect_dead_letter(const raw_message& m) const {
        auto p = parse(m);
        if (!std::holds_alternative<dead_letter>(p)) {
            ADD_FAILURE() << "expected a dead letter for " << m.payload << ", got a record";
            return dead_letter{};
        }
        auto d = std::get<dead_letter>(p);
        EXPECT_EQ(d.payload, m.payload);
        EXPECT_EQ(d.set_index, m.set_index);
        EXPECT_EQ(d.source.topic, m.source.topic);
        EXPECT_EQ(d.source.partition, m.source.partition);
        EXPECT_EQ(d.source.offset, m.source.offset);
        EXPECT_EQ(d.received_at_ms, now);
        EXPECT_FALSE(d.error.empty());
        EXPECT_TRUE(is_valid_utf8_without_nul(d.error)) << "error text is not valid UTF-8: " << d.error;
        return d;
    }
    dead_letter expect_dead_letter(std::string payload) const { return expect_dead_letter(message(std::move(payload))); }

    // A valid event whose `name` field has the raw JSON `raw` (clicks is otherwise 3).
    static std::string event_with(const std::string& name, const std::string& raw) {
        std::string s = R"({"user_id":"u1","ts":1795255200000)";
        if (name != "clicks") s += R"(,"clicks":3)";
        return s + ",\"" + name + "\":" + raw + "}";
    }

    ::testing::AssertionResult coerces(const std::string& name, std::size_t index, const std::string& raw,
                                       const value& expected) const {
        const auto payload = event_with(name, raw);
        auto p = parse(payload);
        if (auto* d = std::get_if<dead_letter>(&p))
            return ::testing::AssertionFailure() << payload << " was refused: " << d->error;
        const auto& r = std::get<record>(p);
        if (r.values.size() <= index) return ::testing::AssertionFailure() << "too few values";
        if (r.values[index] != expected)
            return ::testing::AssertionFailure()
                   << payload << " gave alternative " << r.values[index].index() << " != expected alternative "
                   << expected.index() << " (or a different value)";
        return ::testing::AssertionSuccess();
    }

    // The event is refused and the reason names the field and contains `fragment`.
    ::testing::AssertionResult refuses(const std::string& name, const std::string& raw,
                                       const std::string& fragment = "") const {
        const auto payload = event_with(name, raw);
        auto p = parse(payload);
        if (!std::holds_alternative<dead_letter>(p)) return ::testing::AssertionFailure() << payload << " was accepted";
        const auto& error = std::get<dead_letter>(p).error;
        if (error.find("'" + name + "'") == std::string::npos)
            return ::testing::AssertionFailure() << "error does not name '" << name << "': " << error;
        if (error.find(fragment) == std::string::npos)
            return ::testing::AssertionFailure() << "error lacks \"" << fragment << "\": " << error;
        return ::testing::AssertionSuccess();
    }

    config cfg_ = make_config();
    record_parser parser_{cfg_};
};

TEST_F(PreprocessRecordParser, ValidEventBecomesATypedRecordInDeclaredOrder) {
    // Fields in a different order than declared, plus one the set does not declare.
    auto r = expect_record(R"({"extra":{"b":[1,2],"a":null},"unknown":"ignored","seen_at":"2026-11-21T09:00:00Z",)"
                           R"("country":"DE","premium":true,"spend":12.5,"clicks":17,"big":-5,)"
                           R"("ts":"2026-11-21T10:00:00.250Z","user_id":"user-42"})");
    EXPECT_EQ(r.set_index, 1u);
    EXPECT_EQ(r.key, "user-42");
    EXPECT_EQ(r.event_time_ms, nov21_10h + 250);
    EXPECT_EQ(r.ingested_at_ms, now);
    EXPECT_EQ(r.source.topic, "user-events");
    EXPECT_EQ(r.source.partition, 2);
    EXPECT_EQ(r.source.offset, 41);
    ASSERT_EQ(r.values.size(), 7u);
    EXPECT_EQ(r.values[clicks], value{std::int64_t{17}});
    EXPECT_EQ(r.values[spend], value{12.5});
    EXPECT_EQ(r.values[premium], value{true});
    EXPECT_EQ(r.values[country], value{std::string("DE")});
    EXPECT_EQ(r.values[seen_at], value{nov21_10h - 3600000});
    EXPECT_EQ(r.values[extra], value{std::string(R"({"a":null,"b":[1,2]})")});
    EXPECT_EQ(r.values[big], value{std::int64_t{-5}});
}

TEST_F(PreprocessRecordParser, ParsesTheOtherSetBySetIndex) {
    auto m = message(R"({"item_id":"i-1","time":1795255200000,"views":9,"clicks":"not declared here"})");
    m.set_index = 0;
    auto p = parse(m);
    ASSERT_TRUE(std::holds_alternative<record>(p)) << std::get<dead_letter>(p).error;
    const auto& r = std::get<record>(p);
    EXPECT_EQ(r.set_index, 0u);
    EXPECT_EQ(r.key, "i-1");
    ASSERT_EQ(r.values.size(), 1u);
    EXPECT_EQ(r.values[0], value{std::int64_t{9}});
}

TEST_F(PreprocessRecordParser, EventTimeAsRfc3339WithOffset) {
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":"2026-11-21T12:00:00+02:00","clicks":1})").event_time_ms, nov21_10h);
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":"2026-11-21T04:30:00.5-05:30","clicks":1})").event_time_ms,
              nov21_10h + 500);
}

TEST_F(PreprocessRecordParser, EventTimeAsEpochMillisecondsIntegerOrString) {
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":1795255200123,"clicks":1})").event_time_ms, nov21_10h + 123);
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":"1795255200123","clicks":1})").event_time_ms, nov21_10h + 123);
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":0,"clicks":1})").event_time_ms, 0);
}

TEST_F(PreprocessRecordParser, MissingEventTimeIsADeadLetter) {
    auto d = expect_dead_letter(R"({"user_id":"u","clicks":1})");
    EXPECT_NE(d.error.find("'ts'"), std::string::npos) << d.error;
    EXPECT_NE(d.error.find("missing"), std::string::npos) << d.error;
    auto n = expect_dead_letter(R"({"user_id":"u","ts":null,"clicks":1})");
    EXPECT_NE(n.error.find("'ts'"), std::string::npos) << n.error;
}

TEST_F(PreprocessRecordParser, InvalidEventTimeIsADeadLetter) {
    for (const char* ts : {R"("yesterday")", R"("2026-02-30T00:00:00Z")", R"("2026-11-21T10:00:00")", "-1",
                           R"("-1")", "1795255200000.5", "true", R"({"ms":1})", "[1795255200000]",
                           "253402300800000", R"("10000-01-01T00:00:00Z")", R"("")"}) {
        auto d = expect_dead_letter(std::string(R"({"user_id":"u","clicks":1,"ts":)") + ts + "}");
        EXPECT_NE(d.error.find("event time field 'ts'"), std::string::npos) << ts << ": " << d.error;
    }
    // The last millisecond of 9999 is still accepted.
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":253402300799999,"clicks":1})").event_time_ms, 253402300799999);
}

TEST_F(PreprocessRecordParser, IntCoercion) {
    EXPECT_TRUE(coerces("clicks", clicks, "42", value{std::int64_t{42}}));
    EXPECT_TRUE(coerces("clicks", clicks, R"("42")", value{std::int64_t{42}}));
    EXPECT_TRUE(coerces("clicks", clicks, "42.0", value{std::int64_t{42}}));
    EXPECT_TRUE(coerces("big", big, R"("-7")", value{std::int64_t{-7}}));
    EXPECT_TRUE(coerces("big", big, "4.2e3", value{std::int64_t{4200}}));
    EXPECT_TRUE(refuses("clicks", "42.5", "not an integer"));
    EXPECT_TRUE(refuses("clicks", R"("42.5")", "not an integer"));
    EXPECT_TRUE(refuses("clicks", R"("forty")"));
    EXPECT_TRUE(refuses("clicks", R"("")"));
    EXPECT_TRUE(refuses("clicks", R"(" 42")"));
    EXPECT_TRUE(refuses("clicks", "true"));
    EXPECT_TRUE(refuses("clicks", "[42]"));
    EXPECT_TRUE(refuses("clicks", R"({"n":42})"));
}

TEST_F(PreprocessRecordParser, IntOutOfInt64RangeIsRefused) {
    EXPECT_TRUE(coerces("big", big, "9223372036854775807", value{std::int64_t{INT64_MAX}}));
    EXPECT_TRUE(coerces("big", big, "-9223372036854775808", value{std::int64_t{INT64_MIN}}));
    EXPECT_TRUE(refuses("big", "9223372036854775808", "range"));
    EXPECT_TRUE(refuses("big", "18446744073709551615", "range"));
    EXPECT_TRUE(refuses("big", "1e19", "range"));
    EXPECT_TRUE(refuses("big", "-1e19", "range"));
    EXPECT_TRUE(refuses("big", R"("9223372036854775808")"));
    EXPECT_TRUE(refuses("big", R"("-9223372036854775809")"));
    // One below INT64_MIN: the JSON parser can only hold it as a double, which rounds to exactly
    // INT64_MIN; it must be refused, not stored as a different number.
    EXPECT_TRUE(refuses("big", "-9223372036854775809", "range"));
}

TEST_F(PreprocessRecordParser, IntBounds) {
    EXPECT_TRUE(coerces("clicks", clicks, "0", value{std::int64_t{0}}));
    EXPECT_TRUE(coerces("clicks", clicks, "1000", value{std::int64_t{1000}}));
    EXPECT_TRUE(refuses("clicks", "-1", "below the minimum"));
    EXPECT_TRUE(refuses("clicks", "1001", "above the maximum"));
    // Bounds apply after coercion.
    EXPECT_TRUE(refuses("clicks", R"("1001")", "above the maximum"));
    EXPECT_TRUE(refuses("clicks", "-1.0", "below the minimum"));
}

TEST_F(PreprocessRecordParser, DoubleCoercionAndBounds) {
    EXPECT_TRUE(coerces("spend", spend, "3.5", value{3.5}));
    EXPECT_TRUE(coerces("spend", spend, R"("3.5")", value{3.5}));
    EXPECT_TRUE(coerces("spend", spend, "7", value{7.0}));  // an integer becomes a double
    EXPECT_TRUE(coerces("spend", spend, "0", value{0.0}));
    EXPECT_TRUE(coerces("spend", spend, "1e300", value{1e300}));
    EXPECT_TRUE(refuses("spend", "-0.01", "below the minimum"));
    EXPECT_TRUE(refuses("spend", R"("-3.5")", "below the minimum"));
    EXPECT_TRUE(refuses("spend", R"("3.5 dollars")"));
    EXPECT_TRUE(refuses("spend", R"("")"));
    EXPECT_TRUE(refuses("spend", "true"));
    EXPECT_TRUE(refuses("spend", "[3.5]"));
}

TEST_F(PreprocessRecordParser, NonFiniteDoublesAreRefused) {
    // JSON has no NaN or infinity literals: the event is not JSON at all.
    EXPECT_TRUE(expect_dead_letter(event_with("spend", "NaN")).error.starts_with("malformed JSON"));
    EXPECT_TRUE(expect_dead_letter(event_with("spend", "Infinity")).error.starts_with("malformed JSON"));
    // As strings they parse as numbers but are not finite.
    for (const char* s : {R"("NaN")", R"("nan")", R"("inf")", R"("-inf")", R"("Infinity")", R"("1e400")"})
        EXPECT_TRUE(refuses("spend", s)) << s;
}

TEST_F(PreprocessRecordParser, NumberOverflowIsADeadLetterNotAnException) {
    // 1e400 is valid JSON syntax but overflows a double; the parser must not throw across the
    // preprocess worker thread (that would end the process).
    for (const char* raw : {"1e400", "-1e400"}) {
        processed p = record{};
        ASSERT_NO_THROW(p = parse(event_with("spend", raw))) << raw;
        ASSERT_TRUE(std::holds_alternative<dead_letter>(p)) << raw;
        EXPECT_TRUE(std::get<dead_letter>(p).error.starts_with("malformed JSON")) << std::get<dead_letter>(p).error;
    }
}

TEST_F(PreprocessRecordParser, BoolCoercion) {
    EXPECT_TRUE(coerces("premium", premium, "true", value{true}));
    EXPECT_TRUE(coerces("premium", premium, "false", value{false}));
    EXPECT_TRUE(coerces("premium", premium, R"("true")", value{true}));
    EXPECT_TRUE(coerces("premium", premium, R"("false")", value{false}));
    EXPECT_TRUE(coerces("premium", premium, "1", value{true}));
    EXPECT_TRUE(coerces("premium", premium, "0", value{false}));
    EXPECT_TRUE(refuses("premium", "2", "expected a bool"));
    EXPECT_TRUE(refuses("premium", "-1"));
    EXPECT_TRUE(refuses("premium", "1.0"));
    EXPECT_TRUE(refuses("premium", R"("1")"));
    EXPECT_TRUE(refuses("premium", R"("yes")"));
    EXPECT_TRUE(refuses("premium", R"("TRUE")"));
    EXPECT_TRUE(refuses("premium", "[true]"));
}

TEST_F(PreprocessRecordParser, StringCoercion) {
    EXPECT_TRUE(coerces("country", country, R"("DE")", value{std::string("DE")}));
    EXPECT_TRUE(coerces("country", country, R"("")", value{std::string("")}));
    EXPECT_TRUE(coerces("country", country, R"("Zürich \"Z\"")", value{std::string("Zürich \"Z\"")}));
    EXPECT_TRUE(coerces("country", country, "42", value{std::string("42")}));
    EXPECT_TRUE(coerces("country", country, "-2.5", value{std::string("-2.5")}));
    EXPECT_TRUE(coerces("country", country, "true", value{std::string("true")}));
    EXPECT_TRUE(refuses("country", R"({"code":"DE"})", "expected a string"));
    EXPECT_TRUE(refuses("country", R"(["DE"])", "expected a string"));
}

TEST_F(PreprocessRecordParser, TimestampFieldCoercion) {
    EXPECT_TRUE(coerces("seen_at", seen_at, R"("2026-11-21T12:00:00+02:00")", value{nov21_10h}));
    EXPECT_TRUE(coerces("seen_at", seen_at, "1795255200000", value{nov21_10h}));
    EXPECT_TRUE(coerces("seen_at", seen_at, R"("1795255200000")", value{nov21_10h}));
    EXPECT_TRUE(refuses("seen_at", R"("soon")"));
    EXPECT_TRUE(refuses("seen_at", "-5"));
    EXPECT_TRUE(refuses("seen_at", "false"));
    // The event-time rule: a number below 10^11 is epoch seconds, and may have a fraction.
    EXPECT_TRUE(coerces("seen_at", seen_at, "1795255200", value{nov21_10h}));
    EXPECT_TRUE(coerces("seen_at", seen_at, "2.5", value{std::int64_t{2500}}));
    EXPECT_TRUE(refuses("seen_at", "1795255200000.5", "fraction of a millisecond"));
}

TEST_F(PreprocessRecordParser, EventTimeAsEpochSecondsOrMilliseconds) {
    const auto at = [&](const std::string& ts) {
        return expect_record(R"({"user_id":"u","clicks":1,"ts":)" + ts + "}").event_time_ms;
    };
    EXPECT_EQ(at("1795255200"), nov21_10h);
    EXPECT_EQ(at("1795255200.25"), nov21_10h + 250);
    EXPECT_EQ(at("1795255200.0004"), nov21_10h);  // rounded to the nearest millisecond
    EXPECT_EQ(at("1795255200.0006"), nov21_10h + 1);
    EXPECT_EQ(at(R"("1795255200")"), nov21_10h);
    EXPECT_EQ(at(R"("1795255200.5")"), nov21_10h + 500);
    EXPECT_EQ(at("1795255200123"), nov21_10h + 123);
    EXPECT_EQ(at("1.795255200123e12"), nov21_10h + 123);  // a whole number of ms written as a float
    // The boundary: 10^11 - 1 is seconds (year 5138), 10^11 is milliseconds (1973).
    EXPECT_EQ(at("99999999999"), 99999999999000);
    EXPECT_EQ(at("100000000000"), 100000000000);
    auto d = expect_dead_letter(R"({"user_id":"u","clicks":1,"ts":1795255200000.5})");
    EXPECT_NE(d.error.find("fraction of a millisecond"), std::string::npos) << d.error;
    for (const char* bad : {R"("inf")", R"("nan")", R"("1e400")", "-0.5", R"(" 1795255200")"})
        EXPECT_NE(expect_dead_letter(std::string(R"({"user_id":"u","clicks":1,"ts":)") + bad + "}")
                      .error.find("event time field 'ts'"),
                  std::string::npos)
            << bad;
}

TEST(PreprocessTimestampRule, PublicHelpers) {
    EXPECT_EQ(epoch_number_to_ms(std::int64_t{1795255200}), nov21_10h);
    EXPECT_EQ(epoch_number_to_ms(std::int64_t{1795255200123}), nov21_10h + 123);
    EXPECT_EQ(epoch_number_to_ms(std::int64_t{-1}), std::nullopt);
    EXPECT_EQ(epoch_number_to_ms(1795255200.5), nov21_10h + 500);
    EXPECT_EQ(epoch_number_to_ms(1795255200000.5), std::nullopt);
    EXPECT_EQ(epoch_number_to_ms(1795255200000.5, /*round_ms=*/true), nov21_10h + 1);  // half away from zero
    EXPECT_EQ(parse_timestamp_text("2026-11-21T10:00:00Z"), nov21_10h);
    EXPECT_EQ(parse_timestamp_text("1795255200"), nov21_10h);
    EXPECT_EQ(parse_timestamp_text("soon"), std::nullopt);
}

TEST(PreprocessSha256, KnownVectors) {
    EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(PreprocessRecordParser, JsonFieldKeepsCompactText) {
    EXPECT_TRUE(coerces("extra", extra, R"({ "b" : 1, "a" : [ 1, 2 ] })", value{std::string(R"({"a":[1,2],"b":1})")}));
    EXPECT_TRUE(coerces("extra", extra, R"("text")", value{std::string(R"("text")")}));
    EXPECT_TRUE(coerces("extra", extra, "5", value{std::string("5")}));
    EXPECT_TRUE(coerces("extra", extra, "[true,false]", value{std::string("[true,false]")}));
    EXPECT_TRUE(coerces("extra", extra, R"({"city":"Zürich"})", value{std::string(R"({"city":"Zürich"})")}));
}

TEST_F(PreprocessRecordParser, JsonFieldWithABackslashBeforeU0000IsNotANul) {
    // The JSON string "C:\\u0000" is the seven characters C : \ u 0 0 0 0 — no NUL anywhere, and
    // PostgreSQL jsonb stores it fine. It must not be mistaken for a \u0000 escape.
    EXPECT_TRUE(coerces("extra", extra, R"({"path":"C:\\u0000"})", value{std::string(R"({"path":"C:\\u0000"})")}));
    EXPECT_TRUE(coerces("country", country, R"("C:\\u0000")", value{std::string("C:\\u0000")}));
}

TEST_F(PreprocessRecordParser, MissingRequiredFieldNamesIt) {
    auto d = expect_dead_letter(R"({"user_id":"u","ts":1795255200000,"spend":1})");
    EXPECT_NE(d.error.find("'clicks'"), std::string::npos) << d.error;
    EXPECT_NE(d.error.find("required"), std::string::npos) << d.error;
    auto n = expect_dead_letter(R"({"user_id":"u","ts":1795255200000,"clicks":null})");
    EXPECT_NE(n.error.find("'clicks'"), std::string::npos) << n.error;
}

TEST_F(PreprocessRecordParser, MissingOptionalFieldIsItsDefaultOrNull) {
    auto r = expect_record(R"({"user_id":"u","ts":1795255200000,"clicks":1})");
    ASSERT_EQ(r.values.size(), 7u);
    EXPECT_EQ(r.values[clicks], value{std::int64_t{1}});
    EXPECT_EQ(r.values[spend], value{});
    EXPECT_EQ(r.values[premium], value{});
    EXPECT_EQ(r.values[country], value{std::string("??")});
    EXPECT_EQ(r.values[seen_at], value{});
    EXPECT_EQ(r.values[extra], value{});
    EXPECT_EQ(r.values[big], value{});
    // An explicit null is the same as absent.
    auto n = expect_record(R"({"user_id":"u","ts":1795255200000,"clicks":1,"country":null,"spend":null})");
    ASSERT_EQ(n.values.size(), 7u);
    EXPECT_EQ(n.values[country], value{std::string("??")});
    EXPECT_EQ(n.values[spend], value{});
}

TEST_F(PreprocessRecordParser, KeyRules) {
    auto missing = expect_dead_letter(R"({"ts":1795255200000,"clicks":1})");
    EXPECT_NE(missing.error.find("'user_id'"), std::string::npos) << missing.error;
    EXPECT_NE(missing.error.find("missing"), std::string::npos) << missing.error;
    auto null_key = expect_dead_letter(R"({"user_id":null,"ts":1795255200000,"clicks":1})");
    EXPECT_NE(null_key.error.find("'user_id'"), std::string::npos) << null_key.error;
    auto empty = expect_dead_letter(R"({"user_id":"","ts":1795255200000,"clicks":1})");
    EXPECT_NE(empty.error.find("'user_id'"), std::string::npos) << empty.error;
    EXPECT_NE(empty.error.find("empty"), std::string::npos) << empty.error;

    EXPECT_EQ(expect_record(R"({"user_id":123,"ts":1795255200000,"clicks":1})").key, "123");
    EXPECT_EQ(expect_record(R"({"user_id":-8,"ts":1795255200000,"clicks":1})").key, "-8");
    EXPECT_EQ(expect_record(R"({"user_id":"Zoë 🙂","ts":1795255200000,"clicks":1})").key, "Zoë 🙂");
    for (const char* k : {"1.5", "true", R"({"id":1})", "[1]"}) {
        auto d = expect_dead_letter(std::string(R"({"ts":1795255200000,"clicks":1,"user_id":)") + k + "}");
        EXPECT_NE(d.error.find("'user_id'"), std::string::npos) << k << ": " << d.error;
    }
}

TEST_F(PreprocessRecordParser, KeyOfAtMost1024Bytes) {
    cfg_.kafka.max_message_bytes = 1 << 20;  // the parser reads the config it was given, by reference
    const std::string longest(1024, 'k');
    EXPECT_EQ(expect_record(R"({"user_id":")" + longest + R"(","ts":1,"clicks":1})").key, longest);
    auto d = expect_dead_letter(R"({"user_id":")" + longest + R"(k","ts":1,"clicks":1})");
    EXPECT_NE(d.error.find("'user_id'"), std::string::npos) << d.error;
    EXPECT_NE(d.error.find("1024"), std::string::npos) << d.error;
}

TEST_F(PreprocessRecordParser, MalformedJsonIsADeadLetter) {
    for (const char* payload : {R"({"user_id":"u","ts":1,)", "{", "not json", R"({"user_id":"u"} trailing)",
                                R"({'user_id':'u'})", R"({"user_id":"u",})"}) {
        auto d = expect_dead_letter(payload);
        EXPECT_TRUE(d.error.starts_with("malformed JSON")) << payload << ": " << d.error;
    }
}

TEST_F(PreprocessRecordParser, InvalidUtf8IsADeadLetterWithAValidUtf8Error) {
    // A lone continuation byte, a truncated sequence, an overlong encoding, a UTF-16 surrogate,
    // a code point above U+10FFFF, and a Latin-1 byte: each quoted by the JSON parser's message.
    for (const std::string& bad : {std::string("\x80"), std::string("\xC3("), std::string("\xC0\xAF"),
                                  std::string("\xED\xA0\x80"), std::string("\xF4\x90\x80\x80"),
                                  std::string("caf\xE9"), std::string("\xE2\x82")}) {
        const auto payload = R"({"user_id":"u1","ts":1795255200000,"clicks":1,"country":")" + bad + R"("})";
        auto d = expect_dead_letter(payload);
        EXPECT_TRUE(d.error.starts_with("malformed JSON")) << d.error;
        EXPECT_EQ(d.payload, payload);  // the original bytes, not a repaired copy
    }
    // Invalid bytes in the key, and in a field the set does not declare, are refused all the same.
    auto key = expect_dead_letter("{\"user_id\":\"u\xFF\",\"ts\":1795255200000,\"clicks\":1}");
    EXPECT_TRUE(key.error.starts_with("malformed JSON")) << key.error;
    auto undeclared = expect_dead_letter("{\"user_id\":\"u\",\"ts\":1795255200000,\"clicks\":1,\"x\":\"\xFE\"}");
    EXPECT_TRUE(undeclared.error.starts_with("malformed JSON")) << undeclared.error;
}

TEST_F(PreprocessRecordParser, RawControlBytesGiveAValidUtf8Error) {
    // A raw NUL and other control bytes inside and outside strings: the error must hold no NUL.
    const std::string nul(1, '\0');
    const std::string in_string = R"({"user_id":"u)" + nul + R"(","ts":1,"clicks":1})";
    EXPECT_TRUE(expect_dead_letter(in_string).error.starts_with("malformed JSON"));
    const std::string outside = "{" + nul + "}";
    EXPECT_TRUE(expect_dead_letter(outside).error.starts_with("malformed JSON"));
    EXPECT_TRUE(expect_dead_letter("{\"user_id\":\"u\x01\",\"ts\":1,\"clicks\":1}").error.starts_with("malformed JSON"));
}

TEST_F(PreprocessRecordParser, NulEscapeInAStringFieldIsADeadLetter) {
    auto d = expect_dead_letter(event_with("country", R"("D\u0000E")"));
    EXPECT_NE(d.error.find("'country'"), std::string::npos) << d.error;
    EXPECT_NE(d.error.find("NUL"), std::string::npos) << d.error;
}

TEST_F(PreprocessRecordParser, NulEscapeInTheKeyIsADeadLetter) {
    for (const char* key : {R"("u\u0000")", R"("\u0000")", R"("\u0000abc")"}) {
        auto d = expect_dead_letter(std::string(R"({"ts":1795255200000,"clicks":1,"user_id":)") + key + "}");
        EXPECT_NE(d.error.find("'user_id'"), std::string::npos) << key << ": " << d.error;
        EXPECT_NE(d.error.find("NUL"), std::string::npos) << key << ": " << d.error;
    }
}

TEST_F(PreprocessRecordParser, NulEscapeInsideAJsonFieldIsADeadLetter) {
    for (const char* raw : {R"({"a":"x\u0000y"})", R"(["\u0000"])", R"({"k\u0000":1})", R"("\u0000")"}) {
        auto d = expect_dead_letter(event_with("extra", raw));
        EXPECT_NE(d.error.find("'extra'"), std::string::npos) << raw << ": " << d.error;
        EXPECT_NE(d.error.find("NUL"), std::string::npos) << raw << ": " << d.error;
    }
}

TEST_F(PreprocessRecordParser, MessageOverMaxMessageBytesIsADeadLetter) {
    // A valid event padded with an undeclared field to exactly the limit, then one byte more.
    auto padded = [](std::size_t size) {
        std::string head = R"({"user_id":"u1","ts":1795255200000,"clicks":1,"pad":")";
        std::string tail = R"("})";
        return head + std::string(size - head.size() - tail.size(), 'p') + tail;
    };
    const auto at_limit = padded(max_message);
    ASSERT_EQ(at_limit.size(), static_cast<std::size_t>(max_message));
    EXPECT_EQ(expect_record(at_limit).key, "u1");

    const auto over = padded(max_message + 1);
    auto d = expect_dead_letter(over);
    EXPECT_NE(d.error.find("max_message_bytes"), std::string::npos) << d.error;
    EXPECT_NE(d.error.find(std::to_string(max_message + 1)), std::string::npos) << d.error;
}

TEST_F(PreprocessRecordParser, EmptyPayloadIsADeadLetter) {
    auto d = expect_dead_letter("");
    EXPECT_NE(d.error.find("empty"), std::string::npos) << d.error;
}

TEST_F(PreprocessRecordParser, TombstoneIsADeadLetter) {
    auto m = message("");
    m.has_value = false;
    auto d = expect_dead_letter(m);
    EXPECT_NE(d.error.find("tombstone"), std::string::npos) << d.error;
    // Even when the message carries bytes, a null value is not a record.
    auto with_bytes = message(R"({"user_id":"u1","ts":1795255200000,"clicks":1})");
    with_bytes.has_value = false;
    EXPECT_NE(expect_dead_letter(with_bytes).error.find("tombstone"), std::string::npos);
}

TEST_F(PreprocessRecordParser, NonObjectEventIsADeadLetter) {
    for (const char* payload : {R"([{"user_id":"u1","ts":1795255200000,"clicks":1}])", "[]", "42", R"("u1")",
                                "null", "true"}) {
        auto d = expect_dead_letter(payload);
        EXPECT_NE(d.error.find("not a JSON object"), std::string::npos) << payload << ": " << d.error;
    }
}

TEST_F(PreprocessRecordParser, DeadLetterKeepsPayloadAndSource) {
    auto m = message(R"({"user_id":"u1","ts":1795255200000,"clicks":"many"})");
    m.source.topic = "user-events";
    m.source.partition = 7;
    m.source.offset = 123456789012;
    auto p = parse(m);
    ASSERT_TRUE(std::holds_alternative<dead_letter>(p));
    const auto& d = std::get<dead_letter>(p);
    EXPECT_EQ(d.payload, m.payload);
    EXPECT_EQ(d.source.topic, "user-events");
    EXPECT_EQ(d.source.partition, 7);
    EXPECT_EQ(d.source.offset, 123456789012);
    EXPECT_EQ(d.set_index, 1u);
    EXPECT_EQ(d.received_at_ms, now);
    EXPECT_NE(d.error.find("'clicks'"), std::string::npos) << d.error;
    EXPECT_NE(d.error.find("many"), std::string::npos) << d.error;  // the offending value is quoted
}

TEST_F(PreprocessRecordParser, ErrorQuotingLongValuesIsShortAndValidUtf8) {
    // A long multi-byte value is quoted in the error; cutting it must not split a character.
    std::string long_text;
    for (int i = 0; i < 100; ++i) long_text += "é";
    auto d = expect_dead_letter(event_with("clicks", "\"" + long_text + "\""));
    EXPECT_LT(d.error.size(), 200u) << d.error;
    EXPECT_NE(d.error.find("'clicks'"), std::string::npos) << d.error;
    for (int shift = 0; shift < 4; ++shift) {
        auto s = expect_dead_letter(event_with("clicks", "\"" + std::string(shift, 'a') + long_text + "\""));
        EXPECT_TRUE(is_valid_utf8_without_nul(s.error)) << s.error;
    }
}

// ---------------------------------------------------------------------------------------------
// Schema extensions, transforms and filters, configured as a user writes them (through the loader).

class PreprocessSchema : public ::testing::Test {
protected:
    // Loads one feature set "s" (key user_id, event time ts) with `body` spliced in.
    [[nodiscard]] ::testing::AssertionResult use(const std::string& body) {
        auto r = load_config_text(R"({"feature_sets": [{"name": "s", "topic": "t", "key": "user_id",
                                      "event_time": "ts", )" +
                                  body + "}]}");
        if (!r.ok()) return ::testing::AssertionFailure() << format_errors(r.errors);
        parser_.reset();
        cfg_ = std::make_unique<config>(std::move(r.cfg));
        parser_ = std::make_unique<record_parser>(*cfg_);
        return ::testing::AssertionSuccess();
    }

    raw_message message(std::string payload) const { return message_at(std::move(payload), 3, 77); }

    processed parse(const raw_message& m) const { return parser_->parse(m, now); }

    record expect_record(const std::string& payload) const {
        auto p = parse(message(payload));
        if (auto* d = std::get_if<dead_letter>(&p)) ADD_FAILURE() << payload << "\nwas a dead letter: " << d->error;
        if (auto* k = std::get_if<skipped>(&p)) ADD_FAILURE() << payload << "\nwas skipped: " << k->reason;
        if (auto* r = std::get_if<record>(&p)) return *r;
        return record{};
    }

    std::string expect_dead_letter(const std::string& payload) const {
        auto p = parse(message(payload));
        if (auto* d = std::get_if<dead_letter>(&p)) return d->error;
        ADD_FAILURE() << payload << "\nwas not a dead letter";
        return {};
    }

    std::string expect_skipped(const std::string& payload) const {
        auto p = parse(message(payload));
        if (auto* k = std::get_if<skipped>(&p)) {
            EXPECT_EQ(k->set_index, 0u);
            EXPECT_EQ(k->source.topic, "t");
            EXPECT_EQ(k->source.partition, 3);
            EXPECT_EQ(k->source.offset, 77);
            EXPECT_FALSE(k->reason.empty());
            return k->reason;
        }
        if (auto* d = std::get_if<dead_letter>(&p)) ADD_FAILURE() << payload << "\nwas a dead letter: " << d->error;
        if (std::holds_alternative<record>(p)) ADD_FAILURE() << payload << "\nwas kept";
        return {};
    }

    // The one value of a set with a single field.
    value only_value(const std::string& payload) const {
        auto r = expect_record(payload);
        return r.values.size() == 1 ? r.values[0] : value{std::string("<no record>")};
    }

    static std::string event(const std::string& members) {
        return R"({"user_id":"u1","ts":1795255200000)" + (members.empty() ? "" : "," + members) + "}";
    }

    std::unique_ptr<config> cfg_;
    std::unique_ptr<record_parser> parser_;
};

TEST_F(PreprocessSchema, SourceIsAJsonPointer) {
    ASSERT_TRUE(use(R"("fields": {"os": {"type": "string", "source": "/device/os"},
                                  "first_tag": {"type": "string", "source": "/tags/0"},
                                  "odd": {"type": "int", "source": "/a~1b/c~0d"},
                                  "deep": {"type": "int", "source": "/x/1/y", "default": -1},
                                  "plain": {"type": "int"}})"));
    auto r = expect_record(event(R"("device":{"os":"ios"},"tags":["vip","new"],"a/b":{"c~d":7},)"
                                 R"("x":[{"y":1},{"y":2}],"plain":3,"os":"not this one")"));
    ASSERT_EQ(r.values.size(), 5u);
    EXPECT_EQ(r.values[0], value{std::string("ios")});
    EXPECT_EQ(r.values[1], value{std::string("vip")});
    EXPECT_EQ(r.values[2], value{std::int64_t{7}});
    EXPECT_EQ(r.values[3], value{std::int64_t{2}});
    EXPECT_EQ(r.values[4], value{std::int64_t{3}});
    // Nothing at the pointer (a missing member, a string in the way, an index out of range or
    // with a leading zero) is an absent field: its default or null.
    for (const char* members : {R"("device":"ios","x":[{"y":1}])", R"("tags":[],"x":{"2":{"y":5}})",
                                R"("x":[{"y":1},{"z":2}])", R"("x":"[]")"}) {
        auto m = expect_record(event(members));
        ASSERT_EQ(m.values.size(), 5u) << members;
        EXPECT_EQ(m.values[0], value{}) << members;
        EXPECT_EQ(m.values[3], value{std::int64_t{-1}}) << members;
    }
    EXPECT_EQ(expect_record(event(R"("x":[{"y":1},{"y":2}],"tags":{"0":"as key"})")).values[1],
              value{std::string("as key")});  // a decimal token also names an object member
}

TEST_F(PreprocessSchema, RequiredFieldBehindAPointerNamesTheField) {
    ASSERT_TRUE(use(R"("fields": {"os": {"type": "string", "source": "/device/os", "required": true}})"));
    const auto error = expect_dead_letter(event(R"("device":{})"));
    EXPECT_NE(error.find("field 'os' is required"), std::string::npos) << error;
}

TEST_F(PreprocessSchema, KeyAndEventTimeMayBePointers) {
    ASSERT_TRUE(use(R"("fields": {})"));
    cfg_->feature_sets[0].key_field = "/user/id";
    cfg_->feature_sets[0].event_time_field = "/meta/ts";
    parser_ = std::make_unique<record_parser>(*cfg_);
    auto r = expect_record(R"({"user":{"id":"u-9"},"meta":{"ts":"2026-11-21T10:00:00Z"}})");
    EXPECT_EQ(r.key, "u-9");
    EXPECT_EQ(r.event_time_ms, nov21_10h);
    auto e = expect_dead_letter(R"({"user":{"name":"x"},"meta":{"ts":1}})");
    EXPECT_NE(e.find("key field '/user/id' is missing"), std::string::npos) << e;
}

TEST_F(PreprocessSchema, EventTimeFallsBackToTheKafkaTimestamp) {
    ASSERT_TRUE(use(R"("event_time_fallback": "kafka_timestamp")"));
    EXPECT_EQ(expect_record(R"({"user_id":"u"})").event_time_ms, nov21_10h + 42);
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":null})").event_time_ms, nov21_10h + 42);
    // The event's own time wins; a bad one is still an error, not a reason to fall back.
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":1795255200})").event_time_ms, nov21_10h);
    EXPECT_NE(expect_dead_letter(R"({"user_id":"u","ts":"soon"})").find("event time field 'ts'"), std::string::npos);
    // No Kafka timestamp to fall back on (an HTTP push).
    auto m = message(R"({"user_id":"u"})");
    m.kafka_timestamp_ms = -1;
    auto p = parse(m);
    ASSERT_TRUE(std::holds_alternative<dead_letter>(p));
    EXPECT_NE(std::get<dead_letter>(p).error.find("no Kafka timestamp"), std::string::npos);

    ASSERT_TRUE(use(R"("event_time_fallback": "none")"));
    EXPECT_NE(expect_dead_letter(R"({"user_id":"u"})").find("event time field 'ts' is missing"), std::string::npos);
}

TEST_F(PreprocessSchema, AllowedValues) {
    ASSERT_TRUE(use(R"("fields": {"country": {"type": "string", "allowed": ["DE", "US"], "default": "DE"},
                                  "tier": {"type": "int", "allowed": [1, 2, 3]}})"));
    auto r = expect_record(event(R"("country":"US","tier":"2")"));
    EXPECT_EQ(r.values[0], value{std::string("US")});
    EXPECT_EQ(r.values[1], value{std::int64_t{2}});
    auto absent = expect_record(event(""));  // the default, and null, pass
    EXPECT_EQ(absent.values[0], value{std::string("DE")});
    EXPECT_EQ(absent.values[1], value{});

    const auto country = expect_dead_letter(event(R"("country":"de")"));
    EXPECT_EQ(country, R"(field 'country' (string): "de" is not one of the allowed values "DE", "US")");
    const auto tier = expect_dead_letter(event(R"("tier":4)"));
    EXPECT_EQ(tier, "field 'tier' (int): 4 is not one of the allowed values 1, 2, 3");
}

TEST_F(PreprocessSchema, ALongAllowedListIsCutInTheMessage) {
    std::string list;
    for (int i = 0; i < 30; ++i) list += (i ? "," : "") + std::to_string(i);
    ASSERT_TRUE(use(R"("fields": {"n": {"type": "int", "allowed": [)" + list + "]}}"));
    const auto error = expect_dead_letter(event(R"("n":99)"));
    EXPECT_NE(error.find("0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ... (30 in all)"), std::string::npos) << error;
}

TEST_F(PreprocessSchema, RenameMovesATopLevelMember) {
    ASSERT_TRUE(use(R"("fields": {"spend": {"type": "double"}},
                       "transforms": [{"op": "rename", "from": "amt", "to": "spend"},
                                      {"op": "rename", "from": "uid", "to": "user_id"},
                                      {"op": "rename", "from": "time", "to": "ts"}])"));
    auto r = expect_record(R"({"uid":"u7","time":1795255200,"amt":2.5})");
    EXPECT_EQ(r.key, "u7");
    EXPECT_EQ(r.event_time_ms, nov21_10h);
    EXPECT_EQ(r.values[0], value{2.5});
    // The renamed member replaces one already there; without `from` nothing changes.
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":1,"amt":1.5,"spend":9})").values[0], value{1.5});
    EXPECT_EQ(expect_record(R"({"user_id":"u","ts":1,"spend":9})").values[0], value{9.0});
}

TEST_F(PreprocessSchema, CastReadsLeniently) {
    const auto cast = [&](const char* type) {
        return use(std::string(R"("fields": {"v": {"type": ")") + type +
                   R"("}}, "transforms": [{"op": "cast", "field": "v", "to": ")" + type + "\"}]");
    };
    ASSERT_TRUE(cast("int"));
    EXPECT_EQ(only_value(event(R"("v":42.9)")), value{std::int64_t{42}});
    EXPECT_EQ(only_value(event(R"("v":-42.9)")), value{std::int64_t{-42}});
    EXPECT_EQ(only_value(event(R"("v":" 42 ")")), value{std::int64_t{42}});
    EXPECT_EQ(only_value(event(R"("v":"42.9")")), value{std::int64_t{42}});
    EXPECT_EQ(only_value(event(R"("v":true)")), value{std::int64_t{1}});
    EXPECT_NE(expect_dead_letter(event(R"("v":"forty")")).find("cannot cast \"forty\" to int"), std::string::npos);
    EXPECT_NE(expect_dead_letter(event(R"("v":1e30)")).find("out of the 64-bit integer range"), std::string::npos);
    EXPECT_NE(expect_dead_letter(event(R"("v":[1])")).find("field 'v'"), std::string::npos);

    ASSERT_TRUE(cast("double"));
    EXPECT_EQ(only_value(event(R"("v":" 3.5 ")")), value{3.5});
    EXPECT_EQ(only_value(event(R"("v":false)")), value{0.0});
    EXPECT_NE(expect_dead_letter(event(R"("v":"nan")")).find("cannot cast"), std::string::npos);

    ASSERT_TRUE(cast("bool"));
    for (const char* yes : {R"("yes")", R"(" Y ")", R"("On")", R"("TRUE")", R"("1")", "2", "-1", "0.5"})
        EXPECT_EQ(only_value(event(std::string(R"("v":)") + yes)), value{true}) << yes;
    for (const char* no : {R"("no")", R"("n")", R"("OFF")", R"("False")", R"("0")", "0", "0.0"})
        EXPECT_EQ(only_value(event(std::string(R"("v":)") + no)), value{false}) << no;
    EXPECT_NE(expect_dead_letter(event(R"("v":"maybe")")).find("cannot cast \"maybe\" to bool"), std::string::npos);

    ASSERT_TRUE(cast("string"));
    EXPECT_EQ(only_value(event(R"("v":{"b":1,"a":[1,2]})")), value{std::string(R"({"a":[1,2],"b":1})")});
    EXPECT_EQ(only_value(event(R"("v":[1,"x"])")), value{std::string(R"([1,"x"])")});
    EXPECT_EQ(only_value(event(R"("v":7)")), value{std::string("7")});

    ASSERT_TRUE(cast("timestamp"));
    EXPECT_EQ(only_value(event(R"("v":1795255200000.6)")), value{nov21_10h + 1});
    EXPECT_EQ(only_value(event(R"("v":" 2026-11-21T10:00:00Z ")")), value{nov21_10h});

    // Without the cast, the same values are refused by the strict rules.
    ASSERT_TRUE(use(R"("fields": {"v": {"type": "int"}})"));
    EXPECT_FALSE(expect_dead_letter(event(R"("v":42.9)")).empty());
    EXPECT_FALSE(expect_dead_letter(event(R"("v":" 42 ")")).empty());
}

TEST_F(PreprocessSchema, ValueTransforms) {
    ASSERT_TRUE(use(R"("fields": {"country": {"type": "string"}, "code": {"type": "string"},
                                  "name": {"type": "string"}, "email": {"type": "string"},
                                  "salted": {"type": "string"}, "clicks": {"type": "int"},
                                  "ratio": {"type": "double"}, "tier": {"type": "int"}},
                       "transforms": [{"op": "lower", "field": "country"},
                                      {"op": "upper", "field": "code"},
                                      {"op": "trim", "field": "name"},
                                      {"op": "hash", "field": "email"},
                                      {"op": "hash", "field": "salted", "salt": "pepper:"},
                                      {"op": "clamp", "field": "clicks", "min": 0, "max": 100},
                                      {"op": "clamp", "field": "ratio", "max": 1},
                                      {"op": "default", "field": "tier", "value": 1}])"));
    auto r = expect_record(event(R"("country":"DE","code":"de-by","name":"  Zoë \t\n","email":"abc",)"
                                 R"("salted":"abc","clicks":500,"ratio":-3.5)"));
    ASSERT_EQ(r.values.size(), 8u);
    EXPECT_EQ(r.values[0], value{std::string("de")});
    EXPECT_EQ(r.values[1], value{std::string("DE-BY")});
    EXPECT_EQ(r.values[2], value{std::string("Zoë")});
    EXPECT_EQ(r.values[3], value{std::string("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")});
    EXPECT_EQ(r.values[4], value{sha256_hex("pepper:abc")});
    EXPECT_EQ(r.values[5], value{std::int64_t{100}});
    EXPECT_EQ(r.values[6], value{-3.5});  // below no minimum
    EXPECT_EQ(r.values[7], value{std::int64_t{1}});

    auto low = expect_record(event(R"("clicks":-7,"ratio":1.5,"tier":3,"country":"ÄB")"));
    EXPECT_EQ(low.values[0], value{std::string("Äb")});  // ASCII only: other bytes stay as they are
    EXPECT_EQ(low.values[5], value{std::int64_t{0}});
    EXPECT_EQ(low.values[6], value{1.0});
    EXPECT_EQ(low.values[7], value{std::int64_t{3}});
    // Null stays null through lower, hash and clamp.
    auto nulls = expect_record(event(""));
    EXPECT_EQ(nulls.values[0], value{});
    EXPECT_EQ(nulls.values[3], value{});
    EXPECT_EQ(nulls.values[5], value{});
}

TEST_F(PreprocessSchema, TransformsOfAFieldRunInFileOrder) {
    ASSERT_TRUE(use(R"("fields": {"a": {"type": "string"}, "b": {"type": "string"}},
                       "transforms": [{"op": "trim", "field": "a"}, {"op": "hash", "field": "a"},
                                      {"op": "hash", "field": "b"}, {"op": "trim", "field": "b"}])"));
    auto r = expect_record(event(R"("a":" x ","b":" x ")"));
    EXPECT_EQ(r.values[0], value{sha256_hex("x")});
    EXPECT_EQ(r.values[1], value{sha256_hex(" x ")});

    ASSERT_TRUE(use(R"("fields": {"c": {"type": "string"}},
                       "transforms": [{"op": "default", "field": "c", "value": "Unknown"},
                                      {"op": "upper", "field": "c"}, {"op": "lower", "field": "c"}])"));
    EXPECT_EQ(only_value(event("")), value{std::string("unknown")});
    EXPECT_EQ(only_value(event(R"("c":"MiXeD")")), value{std::string("mixed")});
}

TEST_F(PreprocessSchema, ChecksApplyToTheTransformedValue) {
    ASSERT_TRUE(use(R"("fields": {"clicks": {"type": "int", "max": 100}, "spend": {"type": "double", "min": 0},
                                  "country": {"type": "string", "allowed": ["DE", "US"]}},
                       "transforms": [{"op": "clamp", "field": "clicks", "max": 100},
                                      {"op": "upper", "field": "country"},
                                      {"op": "default", "field": "spend", "value": -1}])"));
    auto r = expect_record(event(R"("clicks":5000,"country":"de","spend":2)"));
    EXPECT_EQ(r.values[0], value{std::int64_t{100}});
    EXPECT_EQ(r.values[2], value{std::string("DE")});
    // The default transform's value is checked like any other: -1 is below the minimum.
    const auto error = expect_dead_letter(event(R"("clicks":1,"country":"us")"));
    EXPECT_EQ(error, "field 'spend' (double): -1.0 is below the minimum 0.0");
}

TEST_F(PreprocessSchema, FilterConditions) {
    struct one_case {
        const char* condition;
        const char* kept;
        const char* skipped;
    };
    const one_case cases[] = {
        {R"("equals": "DE")", R"("country":"DE")", R"("country":"US")"},
        {R"("not_equals": "DE")", R"("country":"US")", R"("country":"DE")"},
        {R"("not_equals": "DE")", "", R"("country":"DE")"},  // null != "DE"
        {R"("in": ["DE", "US"])", R"("country":"US")", R"("country":"FR")"},
        {R"("in": ["DE", null])", "", R"("country":"FR")"},
        {R"("not_in": ["DE", "US"])", R"("country":"FR")", R"("country":"DE")"},
        {R"("not_in": ["DE"])", "", R"("country":"DE")"},
        {R"("equals": null)", "", R"("country":"DE")"},
    };
    for (const auto& c : cases) {
        ASSERT_TRUE(use(std::string(R"("fields": {"country": {"type": "string"}},
                                      "transforms": [{"op": "filter", "field": "country", )") +
                        c.condition + "}]"));
        EXPECT_TRUE(std::holds_alternative<record>(parse(message(event(c.kept))))) << c.condition << " " << c.kept;
        EXPECT_FALSE(expect_skipped(event(c.skipped)).empty()) << c.condition << " " << c.skipped;
    }
    // Nothing equals null but null: "equals" a value skips an event without the field.
    ASSERT_TRUE(use(R"("fields": {"country": {"type": "string"}},
                       "transforms": [{"op": "filter", "field": "country", "equals": "DE"}])"));
    EXPECT_FALSE(expect_skipped(event("")).empty());
}

TEST_F(PreprocessSchema, FilterComparisons) {
    ASSERT_TRUE(use(R"("fields": {"clicks": {"type": "int"}, "spend": {"type": "double"},
                                  "seen": {"type": "timestamp"}},
                       "transforms": [{"op": "filter", "field": "clicks", "gt": 2.5},
                                      {"op": "filter", "field": "clicks", "lte": 10},
                                      {"op": "filter", "field": "spend", "gte": 0},
                                      {"op": "filter", "field": "seen", "lt": "2027-01-01T00:00:00Z"}])"));
    const auto seen = std::string(R"("seen":"2026-11-21T10:00:00Z")");
    EXPECT_TRUE(std::holds_alternative<record>(parse(message(event(R"("clicks":3,"spend":0,)" + seen)))));
    EXPECT_TRUE(std::holds_alternative<record>(parse(message(event(R"("clicks":10,"spend":1e9,)" + seen)))));
    EXPECT_NE(expect_skipped(event(R"("clicks":2,"spend":1,)" + seen)).find("transforms[0] (clicks > 2.5): got 2"),
              std::string::npos);
    EXPECT_NE(expect_skipped(event(R"("clicks":11,"spend":1,)" + seen)).find("transforms[1] (clicks <= 10): got 11"),
              std::string::npos);
    EXPECT_NE(expect_skipped(event(R"("clicks":5,"spend":-0.5,)" + seen)).find("transforms[2]"), std::string::npos);
    EXPECT_NE(expect_skipped(event(R"("clicks":5,"spend":1,"seen":"2027-01-01T00:00:00Z")")).find("transforms[3]"),
              std::string::npos);
    // A null is not ordered: every comparison with it fails.
    EXPECT_NE(expect_skipped(event(R"("spend":1,)" + seen)).find("got null"), std::string::npos);
}

TEST_F(PreprocessSchema, FiltersDecideBeforeTheRestIsRead) {
    ASSERT_TRUE(use(R"("fields": {"kind": {"type": "string"}, "clicks": {"type": "int", "required": true}},
                       "transforms": [{"op": "lower", "field": "kind"},
                                      {"op": "filter", "field": "kind", "equals": "click"}])"));
    // Another kind of event on the same topic, without the key or the required field: skipped.
    const auto reason = expect_skipped(R"({"kind":"View","page":"/home"})");
    EXPECT_EQ(reason, R"(filtered out by transforms[1] (kind = "click"): got "view")");
    // The filter sees the transformed value.
    EXPECT_EQ(expect_record(event(R"("kind":"CLICK","clicks":2)")).values[0], value{std::string("click")});
    // A kept event is checked in full.
    EXPECT_NE(expect_dead_letter(event(R"("kind":"click")")).find("field 'clicks' is required"), std::string::npos);
    EXPECT_NE(expect_dead_letter(R"({"kind":"click","clicks":1})").find("key field 'user_id' is missing"),
              std::string::npos);
    // The filtered field's own error is a dead letter, not a skip.
    EXPECT_NE(expect_dead_letter(event(R"("kind":{"a":1},"clicks":1)")).find("field 'kind'"), std::string::npos);
}

TEST_F(PreprocessSchema, EveryFilterMustPass) {
    ASSERT_TRUE(use(R"("fields": {"a": {"type": "int"}, "b": {"type": "int"}},
                       "transforms": [{"op": "filter", "field": "a", "equals": 1},
                                      {"op": "filter", "field": "b", "equals": 2}])"));
    EXPECT_TRUE(std::holds_alternative<record>(parse(message(event(R"("a":1,"b":2)")))));
    EXPECT_NE(expect_skipped(event(R"("a":1,"b":3)")).find("transforms[1]"), std::string::npos);
    EXPECT_NE(expect_skipped(event(R"("a":0,"b":3)")).find("transforms[0]"), std::string::npos);
}

TEST_F(PreprocessSchema, DropStoresNullButFiltersSeeTheValue) {
    ASSERT_TRUE(use(R"("fields": {"debug": {"type": "bool"}, "clicks": {"type": "int", "max": 10}},
                       "transforms": [{"op": "drop", "field": "debug"}, {"op": "drop", "field": "clicks"},
                                      {"op": "filter", "field": "debug", "not_equals": true}])"));
    auto r = expect_record(event(R"("debug":false,"clicks":3)"));
    EXPECT_EQ(r.values[0], value{});
    EXPECT_EQ(r.values[1], value{});
    EXPECT_FALSE(expect_skipped(event(R"("debug":true,"clicks":3)")).empty());
    // A dropped field is still read and checked.
    EXPECT_NE(expect_dead_letter(event(R"("clicks":11)")).find("above the maximum"), std::string::npos);
}

// The value is quoted as the event wrote it (its JSON text), also when a cast trimmed it first.
TEST_F(PreprocessSchema, TimeAndRangeErrorsQuoteTheValue) {
    ASSERT_TRUE(use(R"("fields": {"v": {"type": "int"}, "w": {"type": "timestamp"}},
                       "transforms": [{"op": "cast", "field": "v", "to": "int"},
                                      {"op": "cast", "field": "w", "to": "timestamp"}])"));
    const std::pair<const char*, const char*> cases[] = {
        {R"("ts":-5)", "event time field 'ts': -5 is outside years 1970..9999"},
        {R"("ts":"soon")", R"(event time field 'ts': "soon" is neither RFC 3339 nor epoch seconds or milliseconds)"},
        {R"("ts":1795255200000.5)", "event time field 'ts': 1795255200000.5 has a fraction of a millisecond "
                                    "(only epoch seconds may have a fraction)"},
        {R"("ts":1e300)", "event time field 'ts': 1e+300 is outside years 1970..9999"},
        {R"("ts":"-1")", R"(event time field 'ts': "-1" is outside years 1970..9999)"},
        {R"("ts":18446744073709551615)", "event time field 'ts': 18446744073709551615 is outside years 1970..9999"},
        {R"("ts":1,"v":1e30)", "field 'v' (int): 1e+30 is out of the 64-bit integer range"},
        {R"("ts":1,"v":" 1e30 ")", R"(field 'v' (int): " 1e30 " is out of the 64-bit integer range)"},
        {R"("ts":1,"w":"  soon ")",
         R"(field 'w' (timestamp): "  soon " is neither RFC 3339 nor epoch seconds or milliseconds)"},
        {R"("ts":1,"w":-2.5)", "field 'w' (timestamp): -2.5 is outside years 1970..9999"},
    };
    for (const auto& [members, error] : cases)
        EXPECT_EQ(expect_dead_letter(std::string(R"({"user_id":"u",)") + members + "}"), error) << members;
}

TEST_F(PreprocessSchema, TheParserCompilesHandBuiltConfigsToo) {
    // A config built in code (no loader): an empty source means "/<name>".
    config cfg;
    feature_set_config set;
    set.name = "s";
    set.key_field = "k";
    set.event_time_field = "ts";
    field_config f;
    f.name = "v";
    f.type = field_type::string;
    set.fields.push_back(f);
    transform_config t;
    t.op = transform_op::upper;
    t.field = "v";
    set.transforms.push_back(t);
    cfg.feature_sets.push_back(set);
    record_parser parser(cfg);
    raw_message m;
    m.payload = R"({"k":"a","ts":1,"v":"x"})";
    auto p = parser.parse(m, now);
    ASSERT_TRUE(std::holds_alternative<record>(p));
    EXPECT_EQ(std::get<record>(p).values[0], value{std::string("X")});

    cfg.feature_sets[0].transforms[0].field = "nope";
    EXPECT_THROW(record_parser{cfg}, std::invalid_argument);
}

// ---------------------------------------------------------------------------------------------
// The fast path: a set whose key, event time and fields are all top-level members is read with
// simdjson, and must give exactly what the nlohmann path gives, for every input.

using testing_support::every_type_set;
using testing_support::shared_member_set;
using testing_support::transform_list;
using testing_support::transform_set;

// An event as its members: name and raw JSON text, in order.
using members = std::vector<std::pair<std::string, std::string>>;

std::string serialize(const members& m, const std::function<std::string()>& space = [] { return std::string(); }) {
    std::string s = "{" + space();
    for (std::size_t i = 0; i < m.size(); ++i) {
        if (i) s += "," + space();
        s += "\"" + m[i].first + "\"" + space() + ":" + space() + m[i].second + space();
    }
    return s + "}";
}

// JSON texts where simdjson and nlohmann could differ: integer or float, signs of zero, range,
// precision, escapes, surrogates, UTF-8, NULs, containers, depth, and malformed ones.
std::vector<std::string> tricky_values() {
    std::vector<std::string> v = {
        "0", "-0", "-0.0", "0.0", "-0e5", "0e5", "1", "-1", "7", "42", "42.0", "42.9", "-42.9", "1.0", "1E2", "1e2",
        "1e-2", "-1e-400", "1e-400", "1e400", "-1e400", "1.7976931348623159e308", "1.7976931348623157e308",
        "4.9e-324", "2.4703282292062327e-324", "2.2250738585072014e-308", "0.1",
        "3.14159265358979323846264338327950288419716939937510", "100000000000000000000000000000000000000000.5",
        "0.000000000000000000000000000000000000000000000000000000000000000000000000000001234567890123456789012345",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
        "18446744073709551615", "18446744073709551616", "123456789012345678901234567890",
        "-123456789012345678901234567890", "0e99999999999999999999", "1e-99999999999999999999", "1795255200000",
        "1795255200", "1795255200.5", "1795255200000.6", "253402300799999", "253402300800000", "1e11", "99999999999",
        "true", "false", "null", R"("")", R"("x")", R"("42")", R"(" 42 ")", R"("-7")", R"("+7")", R"("3.5")",
        R"("1e400")", R"("nan")", R"("inf")", R"("yes")", R"("TRUE")", R"("Skip ")", R"("skip")",
        R"("2026-11-21T10:00:00Z")", R"("2026-11-21T10:00:00+02:00")", R"("2026-11-21T10:00:00.123456Z")",
        R"("1795255200000")", R"("1795255200.5")", R"("\u0000")", R"("a\u0000b")", R"("\ud83d\ude00")",
        R"("\udc00")", R"("\ud800")", R"("\ud800\u0041")", R"("\udbff\udfff")", R"("\uDBFF\uDFFF")",
        R"("caf\u00e9")", "\"café\"", R"("\"\\\/\b\f\n\r\t")", R"("\u001f\u007f")", "\"\x7f\"", "\"\x01\"",
        "\"\xff\"", "\"\xed\xa0\x80\"", "\"\xc0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xf0\x9f\x98\x80\"",
        "\"" + std::string(1100, 'k') + "\"", "\"" + std::string(1024, 'k') + "\"", "[]", "{}",
        R"([1,2.5,"x",null,true])", R"({"b":1,"a":[1,2]})", R"({"a":1,"a":2})",
        R"([-0,-0.0,1e2,1e18,1e15,123456789012345.0,0.1,5e-324,1e-400,-1e-400,1e308,4.35,0.3])",
        R"({"k":"\u0000"})", R"({"\u0000":1})", R"([18446744073709551616])", R"([[[[[]]]]])", R"(["\udc00"])",
        R"({"a":{"b":{"c":[1,{"d":"\u00e9"}]}}})", R"([9223372036854775808,-9223372036854775808])",
        std::string(1100, '[') + std::string(1100, ']'), "nul", "tru", "fals", "01", "-01", "1.", "-", "+1", ".5",
        "NaN", "Infinity", "-Infinity", "0x10", "1e", "1e+", "\"unterminated", "'single'", "[1,]", R"({"a":})",
        R"({"a" 1})", "[1 2]"};
    return v;
}

// The valid event each test set starts from.
members base_event(const char* set) {
    if (set == every_type_set)
        return {{"user_id", R"("u-1")"},
                {"ts", "1795255200000"},
                {"c0", "17"},
                {"c1", "250"},
                {"d0", "0.5"},
                {"d1", "-3.25e2"},
                {"b0", "true"},
                {"s0", R"("caf\u00e9")"},
                {"s1", R"("abc")"},
                {"t0", R"("2026-11-21T09:00:00Z")"},
                {"j0", R"({"b":[1,2.5,null],"a":"x"})"},
                {"j1", R"([true,{"k":-0.0}])"},
                {"other", R"({"x":1})"}};
    if (set == transform_set)
        return {{"user_id", "42"},
                {"ts", R"("2026-11-21T10:00:00.250Z")"},
                {"kind", R"(" Click ")"},
                {"n", R"("7")"},
                {"x", "1.5"},
                {"flag", "1"},
                {"name", R"("Zoe")"},
                {"cs", R"({"a":[1,2]})"},
                {"ci", R"(" 42.9 ")"},
                {"ct", "1795255200000.6"},
                {"cb", R"("yes")"},
                {"cd", "true"},
                {"tier", "3"}};
    return {{"ts", "1795255200"}, {"user_id", R"("k")"}, {"x", R"([1,{"a":null}])"}, {"y", R"("why")"},
            {"z", R"("unused")"}};
}

// Every member with every tricky value, repeated with it before and after, and whole-event cases.
std::vector<std::string> tricky_events(const members& base, const std::vector<std::string>& values) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < base.size(); ++i)
        for (const auto& v : values) {
            members m = base;
            m[i].second = v;
            out.push_back(serialize(m));
            members before = base, after = base;
            before.insert(before.begin(), {base[i].first, v});
            after.push_back({base[i].first, v});
            out.push_back(serialize(before));
            out.push_back(serialize(after));
        }
    const std::string s = serialize(base);
    for (std::size_t n = 0; n < s.size(); ++n) out.push_back(s.substr(0, n));
    // A member name written with an escape names the same member, as the only one or a repeat.
    std::string escaped = s;
    escaped.replace(2, 1, "\\u00" + std::string(s[2] == 'u' ? "75" : "74"));  // "user_id" / "ts"
    out.push_back(escaped);
    out.push_back(escaped.substr(0, escaped.size() - 1) + "," + s.substr(1));
    for (const std::string& event :
         {"\xEF\xBB\xBF" + s, s + std::string("\0 junk", 6), s + std::string(1, '\0'), s + " \t\r\n", " \t\r\n" + s,
          s + "x", s + "\f", s + "\v", s + "{}", s + ",", "[" + s + "]", std::string("[]"), std::string("1"),
          std::string("\"x\""), std::string("null"), std::string("true"), std::string("{}"), std::string(" "),
          std::string("\xEF\xBB\xBF"), std::string("\xEF\xBB"), std::string(1, '\0'), std::string(1, '{')})
        out.push_back(event);
    return out;
}

// A valid event changed at random: members swapped for tricky values, repeated, dropped,
// reordered or added, written with random whitespace; then maybe a few bytes changed.
std::string mutate(const members& base, const std::vector<std::string>& values, std::mt19937_64& rng) {
    const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    members m = base;
    for (std::size_t k = pick(3); k > 0; --k) {
        switch (pick(5)) {
            case 0:
                m[pick(m.size())].second = values[pick(values.size())];
                break;
            case 1: {
                auto again = m[pick(m.size())];
                if (pick(2)) again.second = values[pick(values.size())];
                m.insert(m.begin() + static_cast<std::ptrdiff_t>(pick(m.size() + 1)), again);
                break;
            }
            case 2:
                if (m.size() > 1) m.erase(m.begin() + static_cast<std::ptrdiff_t>(pick(m.size())));
                break;
            case 3:
                std::swap(m[pick(m.size())], m[pick(m.size())]);
                break;
            default:
                m.insert(m.begin() + static_cast<std::ptrdiff_t>(pick(m.size() + 1)),
                         {"zz" + std::to_string(pick(10)), values[pick(values.size())]});
                break;
        }
    }
    static const char* const spaces[] = {"", "", "", " ", "\n", "\t", "\r\n  "};
    std::string s = serialize(m, [&] { return std::string(spaces[pick(7)]); });
    static const char some_bytes[] = "{}[]:,\"\\u0123456789abcdefeE+-. \t\n\r\x7f\x80\xbf\xc3\xa9\xed\xef\xff\0";
    static const std::string bytes(some_bytes, sizeof some_bytes - 1);  // with the NUL
    if (pick(3) == 0)
        for (std::size_t k = 1 + pick(3); k > 0 && !s.empty(); --k) {
            const std::size_t at = pick(s.size());
            switch (pick(5)) {
                case 0:
                    s[at] = bytes[pick(bytes.size())];
                    break;
                case 1:
                    s.insert(at, 1, bytes[pick(bytes.size())]);
                    break;
                case 2:
                    s.erase(at, 1);
                    break;
                case 3:
                    s.resize(at);
                    break;
                default:
                    s.insert(at, values[pick(values.size())]);
                    break;
            }
        }
    return s;
}

class PreprocessFastPath : public ::testing::Test {
protected:
    // Two parsers of one feature set (`members` holds its keys after name and topic): as written,
    // and on the nlohmann path (on_the_nlohmann_path()).
    [[nodiscard]] ::testing::AssertionResult use(const std::string& members, const std::string& transforms = "") {
        auto r = load_config_text(testing_support::one_set_config(members, transforms));
        if (!r.ok()) return ::testing::AssertionFailure() << format_errors(r.errors);
        fast_.reset();
        slow_.reset();
        fast_cfg_ = std::make_unique<config>(std::move(r.cfg));
        slow_cfg_ = std::make_unique<config>(testing_support::on_the_nlohmann_path(*fast_cfg_));
        fast_ = std::make_unique<record_parser>(*fast_cfg_);
        slow_ = std::make_unique<record_parser>(*slow_cfg_);
        return ::testing::AssertionSuccess();
    }

    static raw_message message(std::string payload) { return message_at(std::move(payload), 1, 9); }

    processed parse(const std::string& payload) const { return fast_->parse(message(payload), now); }

    // An outcome as text, exact to the bit (a double by its hex form: -0.0 is not 0.0 here).
    static std::string outcome(const processed& p) {
        std::ostringstream out;
        if (const auto* r = std::get_if<record>(&p)) {
            out << "record key=" << printable(r->key) << " time=" << r->event_time_ms << " at=" << r->ingested_at_ms
                << " from=" << r->source.topic << "/" << r->source.partition << "/" << r->source.offset << " values=";
            for (const auto& v : r->values) {
                out << "[" << v.index() << ":";
                if (const auto* i = std::get_if<std::int64_t>(&v)) out << *i;
                if (const auto* d = std::get_if<double>(&v)) out << std::hexfloat << *d << std::defaultfloat;
                if (const auto* b = std::get_if<bool>(&v)) out << *b;
                if (const auto* s = std::get_if<std::string>(&v)) out << printable(*s);
                out << "]";
            }
        } else if (const auto* d = std::get_if<dead_letter>(&p)) {
            out << "dead letter: " << printable(d->error) << " payload=" << printable(d->payload)
                << " at=" << d->received_at_ms << " from=" << d->source.offset;
        } else {
            const auto& s = std::get<skipped>(p);
            out << "skipped: " << printable(s.reason) << " from=" << s.source.offset;
        }
        return out.str();
    }

    static std::string printable(const std::string& s) { return testing_support::printable(s); }

    // The same outcome on both paths; counts the kinds of outcome.
    ::testing::AssertionResult same_on_both_paths(const std::string& payload) {
        const auto fast = fast_->parse(message(payload), now);
        const auto slow = slow_->parse(message(payload), now);
        ++kinds_[fast.index()];
        if (outcome(fast) == outcome(slow)) return ::testing::AssertionSuccess();
        return ::testing::AssertionFailure() << "payload " << printable(payload) << "\n  fast path: " << outcome(fast)
                                             << "\n  nlohmann:  " << outcome(slow);
    }

    std::unique_ptr<config> fast_cfg_, slow_cfg_;
    std::unique_ptr<record_parser> fast_, slow_;
    std::size_t kinds_[3] = {0, 0, 0};  // records, dead letters, skipped
};

TEST_F(PreprocessFastPath, ReadsEveryFieldType) {
    ASSERT_TRUE(use(every_type_set));
    // Members in another order than declared, each next to one with the same first letter.
    const auto p = parse(R"({"c1":"250","s1":"abc","ts":1795255200000,"d1":-3.25e2,"c0":17,"user_id":"u-1",)"
                         R"("b0":true,"s0":"caf\u00e9 \"q\"","d0":0.5,"t0":"2026-11-21T09:00:00Z",)"
                         R"("j1":7,"j0":{"b":[1,2.5,null,-0.0,1e2],"a":"x","a":"last"},"other":{"x":[1]}})");
    ASSERT_TRUE(std::holds_alternative<record>(p)) << outcome(p);
    const auto& r = std::get<record>(p);
    EXPECT_EQ(r.key, "u-1");
    EXPECT_EQ(r.event_time_ms, nov21_10h);
    EXPECT_EQ(r.ingested_at_ms, now);
    EXPECT_EQ(r.source.offset, 9);
    ASSERT_EQ(r.values.size(), 10u);
    EXPECT_EQ(r.values[0], value{std::int64_t{17}});
    EXPECT_EQ(r.values[1], value{std::int64_t{250}});
    EXPECT_EQ(r.values[2], value{0.5});
    EXPECT_EQ(r.values[3], value{-325.0});
    EXPECT_EQ(r.values[4], value{true});
    EXPECT_EQ(r.values[5], value{std::string("café \"q\"")});
    EXPECT_EQ(r.values[6], value{std::string("abc")});
    EXPECT_EQ(r.values[7], value{nov21_10h - 3600000});
    // nlohmann's compact text: sorted members, the last of a repeated one, doubles as it prints them.
    EXPECT_EQ(r.values[8], value{std::string(R"({"a":"last","b":[1,2.5,null,-0.0,100.0]})")});
    EXPECT_EQ(r.values[9], value{std::string("7")});

    // An integer key is its decimal text; absent optional fields are their default or null.
    const auto q = parse(R"({"s1":"x","ts":"2026-11-21T10:00:00.250Z","user_id":-42})");
    ASSERT_TRUE(std::holds_alternative<record>(q)) << outcome(q);
    const auto& m = std::get<record>(q);
    EXPECT_EQ(m.key, "-42");
    EXPECT_EQ(m.event_time_ms, nov21_10h + 250);
    EXPECT_EQ(m.values[0], value{});
    EXPECT_EQ(m.values[3], value{1.5});
    EXPECT_EQ(m.values[8], value{});
    EXPECT_EQ(std::get<record>(parse(R"({"s1":"x","ts":1795255200,"user_id":18446744073709551615})")).key,
              "18446744073709551615");
}

TEST_F(PreprocessFastPath, TransformsFiltersAndChecksStillApply) {
    ASSERT_TRUE(use(transform_set, transform_list));
    const auto p = parse(R"({"user_id":"u","kind":" CLICK ","n":500,"flag":true,"name":"abc","cs":{"b":1,"a":[1,2]},)"
                         R"("ci":" 42.9 ","ct":1795255200000.6,"cb":"Yes","cd":true,"tier":3})");
    ASSERT_TRUE(std::holds_alternative<record>(p)) << outcome(p);
    const auto& r = std::get<record>(p);
    EXPECT_EQ(r.event_time_ms, nov21_10h + 42);  // the Kafka timestamp: the event has no ts
    ASSERT_EQ(r.values.size(), 11u);
    EXPECT_EQ(r.values[0], value{std::string("click")});         // trim, lower
    EXPECT_EQ(r.values[1], value{std::int64_t{100}});            // clamp
    EXPECT_EQ(r.values[2], value{0.5});                          // default
    EXPECT_EQ(r.values[3], value{});                             // drop
    EXPECT_EQ(r.values[4], value{sha256_hex("s:abc")});          // hash
    EXPECT_EQ(r.values[5], value{std::string(R"({"a":[1,2],"b":1})")});  // cast to string
    EXPECT_EQ(r.values[6], value{std::int64_t{42}});
    EXPECT_EQ(r.values[7], value{nov21_10h + 1});
    EXPECT_EQ(r.values[8], value{true});
    EXPECT_EQ(r.values[9], value{1.0});
    EXPECT_EQ(r.values[10], value{std::int64_t{3}});

    const auto skip = parse(R"({"user_id":"u","kind":"Skip","n":5})");
    ASSERT_TRUE(std::holds_alternative<skipped>(skip)) << outcome(skip);
    EXPECT_EQ(std::get<skipped>(skip).reason, R"(filtered out by transforms[12] (kind != "skip"): got "skip")");
    const auto low = parse(R"({"user_id":"u","n":-5})");  // clamped to 0, then below the filter's 1
    ASSERT_TRUE(std::holds_alternative<skipped>(low)) << outcome(low);
    EXPECT_EQ(std::get<skipped>(low).reason, "filtered out by transforms[13] (n >= 1): got 0");
    const auto refused = parse(R"({"user_id":"u","n":5,"x":100.5})");
    ASSERT_TRUE(std::holds_alternative<dead_letter>(refused)) << outcome(refused);
    EXPECT_EQ(std::get<dead_letter>(refused).error, "field 'x' (double): 100.5 is above the maximum 100.0");
}

TEST_F(PreprocessFastPath, WhatSimdjsonRefusesOrReadsDifferentlyIsReadAsBefore) {
    ASSERT_TRUE(use(every_type_set));
    const std::string rest = R"("ts":1795255200000,"s1":"x")";
    // nlohmann keeps the last of a repeated member; simdjson would give both.
    EXPECT_EQ(std::get<record>(parse(R"({"user_id":"a",)" + rest + R"(,"user_id":"b"})")).key, "b");
    EXPECT_EQ(std::get<record>(parse(R"({"user_id":"a",)" + rest + R"(,"c0":1,"c0":null})")).values[0], value{});
    // A byte-order mark, and bytes after a NUL that ends the text: nlohmann reads past both.
    EXPECT_EQ(std::get<record>(parse("\xEF\xBB\xBF{\"user_id\":\"a\"," + rest + "}")).key, "a");
    EXPECT_EQ(std::get<record>(parse("{\"user_id\":\"a\"," + rest + std::string("}\0 junk", 7))).key, "a");
    // Integers past 64 bits are doubles to nlohmann: the int field says so, the double field takes it.
    EXPECT_EQ(std::get<dead_letter>(parse(R"({"user_id":"a",)" + rest + R"(,"c0":18446744073709551616})")).error,
              "field 'c0' (int): 1.8446744073709552e+19 is out of the 64-bit integer range");
    EXPECT_EQ(std::get<record>(parse(R"({"user_id":"a",)" + rest + R"(,"d0":-123456789012345678901})")).values[2],
              value{-123456789012345678901.0});
    // Deeper than simdjson's 1024 levels, inside a json field.
    const std::string deep = std::string(1100, '[') + std::string(1100, ']');
    EXPECT_EQ(std::get<record>(parse(R"({"user_id":"a",)" + rest + R"(,"j0":)" + deep + "}")).values[8],
              value{deep});
    // The same text as before for a number out of range and a lone surrogate (both refuse these).
    EXPECT_NE(std::get<dead_letter>(parse(R"({"user_id":"a",)" + rest + R"(,"d0":1e400})")).error.find(
                  "malformed JSON: [json.exception.out_of_range.406] number overflow parsing '1e400'"),
              std::string::npos);
    EXPECT_NE(std::get<dead_letter>(parse(R"({"user_id":"a",)" + rest + R"(,"s0":"\udc00"})")).error.find(
                  "surrogate U+DC00..U+DFFF must follow U+D800..U+DBFF"),
              std::string::npos);
}

// Inputs written to hit each difference between the parsers that we know of, on three sets.
TEST_F(PreprocessFastPath, TrickyInputsGiveTheSameOutcomeOnBothPaths) {
    const std::vector<std::string> values = tricky_values();
    for (const char* set : {every_type_set, transform_set, shared_member_set}) {
        ASSERT_TRUE(set == transform_set ? use(set, transform_list) : use(set));
        for (const auto& payload : tricky_events(base_event(set), values)) EXPECT_TRUE(same_on_both_paths(payload));
    }
    // Every kind of outcome, often (skips come from the filters of one set only).
    EXPECT_GT(kinds_[0], 5000u);
    EXPECT_GT(kinds_[1], 5000u);
    EXPECT_GT(kinds_[2], 20u);
}

// Valid events mutated at random (fixed seed): member values swapped for tricky ones, members
// repeated, dropped and reordered, then bytes flipped, inserted, removed or cut off.
TEST_F(PreprocessFastPath, MutatedEventsGiveTheSameOutcomeOnBothPaths) {
    const std::vector<std::string> values = tricky_values();
    std::mt19937_64 rng(20261121);
    std::size_t mismatches = 0;
    for (const char* set : {every_type_set, transform_set, shared_member_set}) {
        ASSERT_TRUE(set == transform_set ? use(set, transform_list) : use(set));
        const auto base = base_event(set);
        for (int i = 0; i < 3000 && mismatches < 10; ++i) {
            auto payload = mutate(base, values, rng);
            if (!same_on_both_paths(payload)) {
                ++mismatches;
                ADD_FAILURE() << same_on_both_paths(payload).message();
            }
        }
    }
    EXPECT_EQ(mismatches, 0u);
    EXPECT_GT(kinds_[0], 3000u);
    EXPECT_GT(kinds_[1], 3000u);
    EXPECT_GT(kinds_[2], 20u);
}

TEST_F(PreprocessFastPath, ParsesOnSeveralThreadsAtOnce) {
    ASSERT_TRUE(use(every_type_set));
    // Events of different sizes, so that each thread's buffers grow and are reused.
    std::vector<std::string> events;
    std::vector<std::string> expected;
    for (int i = 0; i < 400; ++i) {
        events.push_back(R"({"user_id":"u)" + std::to_string(i) + R"(","ts":1795255200000,"s1":")" +
                         std::string(static_cast<std::size_t>(i * 37 % 3000), 'x') + R"(","c0":)" + std::to_string(i) +
                         (i % 7 ? "}" : R"(,"c0":"dup"})"));
        expected.push_back(outcome(slow_->parse(message(events.back()), now)));
    }
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int round = 0; round < 5; ++round)
                for (std::size_t i = 0; i < events.size(); ++i) {
                    const std::size_t k = (i * 7 + static_cast<std::size_t>(t)) % events.size();
                    if (outcome(fast_->parse(message(events[k]), now)) != expected[k]) ++wrong;
                }
        });
    for (auto& t : threads) t.join();
    EXPECT_EQ(wrong.load(), 0);
}

// ---------------------------------------------------------------------------------------------
// Deduplicator

class PreprocessDeduplicator : public PreprocessSchema {
protected:
    void SetUp() override {
        ASSERT_TRUE(use(R"("fields": {"event_id": {"type": "string"}, "n": {"type": "int"}},
                           "dedup": {"field": "event_id", "window": "10m", "max_ids": 1000})"));
        dedup_ = std::make_unique<deduplicator>(*cfg_);
    }

    // Parses an event and passes it through the deduplicator, as the preprocess stage does.
    processed process(const std::string& id_json, std::int64_t event_time_ms) {
        processed p = parse(
            message(R"({"user_id":"u","ts":)" + std::to_string(event_time_ms) + R"(,"event_id":)" + id_json + "}"));
        dedup_->apply(p);
        return p;
    }
    bool kept(const std::string& id, std::int64_t t) { return std::holds_alternative<record>(process(id, t)); }
    bool dropped(const std::string& id, std::int64_t t) { return std::holds_alternative<skipped>(process(id, t)); }

    static constexpr std::int64_t minute = 60000;
    std::unique_ptr<deduplicator> dedup_;
};

TEST_F(PreprocessDeduplicator, ARepeatWithinTheWindowIsSkipped) {
    const std::int64_t t0 = nov21_10h;
    EXPECT_TRUE(kept(R"("e1")", t0));
    auto again = process(R"("e1")", t0);
    ASSERT_TRUE(std::holds_alternative<skipped>(again));
    const auto& s = std::get<skipped>(again);
    EXPECT_EQ(s.reason, R"(duplicate event id "e1" (field 'event_id') within the dedup window)");
    EXPECT_EQ(s.source.offset, 77);  // its offset still counts
    EXPECT_TRUE(kept(R"("e2")", t0 + 1));
    // Same id, another event time within the window: still a repeat.
    EXPECT_TRUE(dropped(R"("e1")", t0 + 10 * minute));
    EXPECT_TRUE(dropped(R"("e2")", t0 + 2 * minute));  // earlier than the newest, inside the window
    EXPECT_EQ(dedup_->remembered(), 2u);
}

TEST_F(PreprocessDeduplicator, IdsExpireByEventTime) {
    const std::int64_t t0 = nov21_10h;
    EXPECT_TRUE(kept(R"("old")", t0));
    EXPECT_TRUE(kept(R"("edge")", t0 + minute));
    // The newest event moves to t0 + 10m + 1ms: "old" (t0) is now more than 10m behind it.
    EXPECT_TRUE(kept(R"("new")", t0 + 10 * minute + 1));
    EXPECT_EQ(dedup_->remembered(), 2u);
    EXPECT_TRUE(dropped(R"("edge")", t0 + minute));       // exactly 10m behind is still inside
    EXPECT_TRUE(kept(R"("old")", t0 + 10 * minute + 1));  // forgotten: the same id is new again
}

TEST_F(PreprocessDeduplicator, EventsOlderThanTheWindowAreNotChecked) {
    const std::int64_t t0 = nov21_10h;
    EXPECT_TRUE(kept(R"("late")", t0));
    EXPECT_TRUE(kept(R"("x")", t0 + 60 * minute));
    // "late" again, with its old time: behind the window, so neither checked nor remembered.
    EXPECT_TRUE(kept(R"("late")", t0));
    EXPECT_TRUE(kept(R"("late")", t0));
    EXPECT_EQ(dedup_->too_old(), 2u);
    EXPECT_EQ(dedup_->remembered(), 1u);
}

TEST_F(PreprocessDeduplicator, MemoryIsBoundedByMaxIds) {
    // 1000 ids at most: 5000 distinct ids in one window keep the newest 1000.
    for (int i = 0; i < 5000; ++i) ASSERT_TRUE(kept("\"id" + std::to_string(i) + "\"", nov21_10h + i));
    EXPECT_EQ(dedup_->remembered(), 1000u);
    EXPECT_EQ(dedup_->evicted_early(), 4000u);
    EXPECT_TRUE(dropped(R"("id4999")", nov21_10h + 4999));
    EXPECT_TRUE(dropped(R"("id4000")", nov21_10h + 4000));
    EXPECT_TRUE(kept(R"("id3999")", nov21_10h + 3999));  // forgotten early: the documented limit
}

TEST_F(PreprocessDeduplicator, MemoryFollowsTheWindowInALongStream) {
    // One id per second for 3 hours with a 10 minute window: about 600 ids are held, never 10800.
    std::size_t most = 0;
    for (int i = 0; i < 3 * 3600; ++i) {
        ASSERT_TRUE(kept("\"s" + std::to_string(i) + "\"", nov21_10h + i * 1000LL));
        most = std::max(most, dedup_->remembered());
    }
    EXPECT_LE(most, 601u);
    EXPECT_EQ(dedup_->evicted_early(), 0u);
}

TEST_F(PreprocessDeduplicator, NullIdsOtherItemsAndOtherSetsPass) {
    EXPECT_TRUE(kept("null", nov21_10h));
    EXPECT_TRUE(kept("null", nov21_10h));
    EXPECT_EQ(dedup_->remembered(), 0u);
    // Dead letters and skipped items are left as they are.
    processed dl = dead_letter{};
    dedup_->apply(dl);
    EXPECT_TRUE(std::holds_alternative<dead_letter>(dl));
    processed sk = skipped{0, {}, "filtered"};
    dedup_->apply(sk);
    EXPECT_EQ(std::get<skipped>(sk).reason, "filtered");
    // A set without dedup never sees a duplicate.
    EXPECT_FALSE(dedup_->seen(7, "e", nov21_10h));
    EXPECT_FALSE(dedup_->seen(0, "e", nov21_10h));
    EXPECT_TRUE(dedup_->seen(0, "e", nov21_10h));
}

TEST_F(PreprocessDeduplicator, IntIdsAndSetsAreSeparate) {
    auto two_sets = load_config_text(R"({"feature_sets": [
        {"name": "a", "topic": "ta", "key": "k", "event_time": "ts", "fields": {"id": {"type": "int"}},
         "dedup": {"field": "id", "window": "1m"}},
        {"name": "b", "topic": "tb", "key": "k", "event_time": "ts", "fields": {"id": {"type": "int"}},
         "dedup": {"field": "id", "window": "1h"}},
        {"name": "c", "topic": "tc", "key": "k", "event_time": "ts", "fields": {"id": {"type": "int"}}}]})");
    ASSERT_TRUE(two_sets.ok()) << format_errors(two_sets.errors);
    deduplicator d(two_sets.cfg);
    record_parser parser(two_sets.cfg);
    const auto run = [&](std::uint32_t set, std::int64_t t) {
        raw_message m;
        m.set_index = set;
        m.payload = R"({"k":"x","ts":)" + std::to_string(t) + R"(,"id":42})";
        processed p = parser.parse(m, now);
        d.apply(p);
        return p.index();  // 0 record, 2 skipped
    };
    EXPECT_EQ(run(0, nov21_10h), 0u);
    EXPECT_EQ(run(1, nov21_10h), 0u);  // the same id in another set is not a repeat
    EXPECT_EQ(run(2, nov21_10h), 0u);
    EXPECT_EQ(run(0, nov21_10h), 2u);
    EXPECT_EQ(run(1, nov21_10h), 2u);
    EXPECT_EQ(run(2, nov21_10h), 0u);  // no dedup in set c
    // Each set has its own window: 2 minutes later the 1m window forgot, the 1h one did not.
    EXPECT_EQ(run(0, nov21_10h + 2 * 60000), 0u);
    EXPECT_EQ(run(1, nov21_10h + 2 * 60000), 2u);
}

TEST_F(PreprocessDeduplicator, IsMovableIntoAWorkerVector) {
    std::vector<deduplicator> workers;
    for (int i = 0; i < 3; ++i) workers.emplace_back(*cfg_);
    EXPECT_FALSE(workers[1].seen(0, "a", nov21_10h));
    EXPECT_TRUE(workers[1].seen(0, "a", nov21_10h));
    EXPECT_FALSE(workers[2].seen(0, "a", nov21_10h));  // each worker remembers only its own
}

}  // namespace
}  // namespace sluice
