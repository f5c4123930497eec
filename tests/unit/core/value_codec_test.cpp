// The JSON text of typed values: what Redis stores and the API serves, and reading it back.

#include "sluice/core/value_codec.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <limits>
#include <optional>
#include <string>
#include <tuple>

namespace sluice {
namespace {

// Writes v as type, checks the text, reads it back and checks the value is the same.
void expect_round_trip(field_type type, const value& v, const std::string& text) {
    SCOPED_TRACE(std::string(to_string(type)) + " " + text);
    EXPECT_EQ(value_to_json_text(type, v), text);
    const auto back = value_from_json_text(type, text);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, v);
}

TEST(CoreValueCodec, RoundTripsIntegers) {
    expect_round_trip(field_type::int64, value{std::int64_t{17}}, "17");
    expect_round_trip(field_type::int64, value{std::int64_t{-42}}, "-42");
    expect_round_trip(field_type::int64, value{std::int64_t{0}}, "0");
    expect_round_trip(field_type::int64, value{std::numeric_limits<std::int64_t>::max()}, "9223372036854775807");
    expect_round_trip(field_type::int64, value{std::numeric_limits<std::int64_t>::min()}, "-9223372036854775808");
}

TEST(CoreValueCodec, RoundTripsDoubles) {
    expect_round_trip(field_type::float64, value{2.5}, "2.5");
    expect_round_trip(field_type::float64, value{-0.125}, "-0.125");
    expect_round_trip(field_type::float64, value{1e300}, "1e+300");
    // A whole double keeps its type on the way back.
    const auto text = value_to_json_text(field_type::float64, value{3.0});
    const auto back = value_from_json_text(field_type::float64, text);
    ASSERT_TRUE(back.has_value());
    ASSERT_TRUE(std::holds_alternative<double>(*back)) << text;
    EXPECT_EQ(std::get<double>(*back), 3.0);
    // Shortest text that reads back to the same bits.
    const auto third = value_from_json_text(field_type::float64, value_to_json_text(field_type::float64, value{0.1 + 0.2}));
    ASSERT_TRUE(third.has_value());
    EXPECT_EQ(std::get<double>(*third), 0.1 + 0.2);
}

// Redis holds the text of every value, written without the JSON library's node and serializer:
// it must be the library's text byte for byte, or Redis and the API would disagree.
TEST(CoreValueCodec, WritesTheSameTextAsTheJsonLibrary) {
    using json = nlohmann::json;
    std::mt19937_64 rnd(7);
    for (int i = 0; i < 20000; ++i) {
        const std::uint64_t bits = rnd();
        double d;
        std::memcpy(&d, &bits, sizeof d);  // any bit pattern: subnormals, NaN, infinities too
        if (i % 2) d = std::ldexp(static_cast<double>(bits >> 11), -20) - 4e9;  // everyday magnitudes
        ASSERT_EQ(value_to_json_text(field_type::float64, value{d}), json(d).dump()) << bits;
    }
    for (double d : {0.0, -0.0, 1.0, 5.0, 0.1, 1e21, 1e-7, 123456789012345678.0}) EXPECT_EQ(value_to_json_text(field_type::float64, value{d}), json(d).dump());
    const std::string strings[] = {"", "plain text 123", "quote \"", "back\\slash", "tab\t", std::string("nul\0x", 5),
                                   "caf\xc3\xa9", "bad \xff byte", "\x7f", "~"};
    for (const auto& t : strings)
        EXPECT_EQ(value_to_json_text(field_type::string, value{t}), json(t).dump(-1, ' ', false, json::error_handler_t::replace))
            << t;
}

TEST(CoreValueCodec, ReadsAnIntegerTextAsADouble) {
    const auto v = value_from_json_text(field_type::float64, "17");
    ASSERT_TRUE(v.has_value());
    ASSERT_TRUE(std::holds_alternative<double>(*v));
    EXPECT_EQ(std::get<double>(*v), 17.0);
}

// Redis is read on every request, so common texts skip the JSON parser; what is not JSON of the
// column's type must still be refused, and the rest read exactly as the parser reads it.
TEST(CoreValueCodec, ReadsOnlyJsonOfTheColumnsType) {
    const std::pair<field_type, const char*> refused[] = {
        {field_type::int64, "01"},      {field_type::int64, "+1"},        {field_type::int64, "1.0"},
        {field_type::int64, "1e3"},     {field_type::int64, "-"},         {field_type::int64, "9223372036854775808"},
        {field_type::int64, "0x10"},      {field_type::float64, ".5"},
        {field_type::float64, "5."},    {field_type::float64, "1e"},      {field_type::float64, "inf"},
        {field_type::float64, "nan"},   {field_type::float64, "1e400"},   {field_type::float64, "\"1\""}, {field_type::boolean, "True"},
        {field_type::boolean, "1"},     {field_type::string, "abc"},      {field_type::string, "\"a"},
        {field_type::string, "\"\xff\""}, {field_type::string, "\"a\"b\""}, {field_type::string, "1"},
    };
    for (const auto& [type, text] : refused)
        EXPECT_FALSE(value_from_json_text(type, text).has_value()) << to_string(type) << " " << text;

    const std::tuple<field_type, const char*, value> read[] = {
        {field_type::int64, "-0", value{std::int64_t{0}}},
        {field_type::int64, "null", value{}},
        {field_type::float64, "-0.0", value{-0.0}},
        {field_type::float64, "1E-7", value{1e-7}},
        {field_type::float64, "2.5e+3", value{2500.0}},
        {field_type::float64, "0.30000000000000004", value{0.1 + 0.2}},
        {field_type::string, "\"\"", value{std::string()}},
        {field_type::string, "\"a\\nb\"", value{std::string("a\nb")}},
        {field_type::string, "\"\\u00e9\"", value{std::string("\xc3\xa9")}},
        {field_type::string, "\"\xc3\xa9\"", value{std::string("\xc3\xa9")}},
        {field_type::boolean, "false", value{false}},
    };
    for (const auto& [type, text, expected] : read) {
        const auto got = value_from_json_text(type, text);
        ASSERT_TRUE(got.has_value()) << to_string(type) << " " << text;
        EXPECT_EQ(*got, expected) << to_string(type) << " " << text;
    }
}

TEST(CoreValueCodec, RoundTripsBools) {
    expect_round_trip(field_type::boolean, value{true}, "true");
    expect_round_trip(field_type::boolean, value{false}, "false");
}

TEST(CoreValueCodec, RoundTripsStringsWithQuotesAndUnicode) {
    expect_round_trip(field_type::string, value{std::string("DE")}, "\"DE\"");
    expect_round_trip(field_type::string, value{std::string("")}, "\"\"");
    expect_round_trip(field_type::string, value{std::string("say \"hi\"")}, R"("say \"hi\"")");
    expect_round_trip(field_type::string, value{std::string("back\\slash")}, R"("back\\slash")");
    expect_round_trip(field_type::string, value{std::string("line\nbreak\ttab")}, R"("line\nbreak\ttab")");
    // Non-ASCII stays as UTF-8 (not \u escapes), and comes back byte for byte.
    expect_round_trip(field_type::string, value{std::string("Zürich €5 \xF0\x9F\x98\x80")},
                      "\"Zürich €5 \xF0\x9F\x98\x80\"");
}

TEST(CoreValueCodec, ReadsEscapedUnicode) {
    const auto v = value_from_json_text(field_type::string, R"("caf\u00e9 \ud83d\ude00")");
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(*v, value{std::string("café \xF0\x9F\x98\x80")});
}

TEST(CoreValueCodec, WritesTimestampsAsRfc3339) {
    expect_round_trip(field_type::timestamp, value{std::int64_t{1795255200123}}, "\"2026-11-21T10:00:00.123Z\"");
    expect_round_trip(field_type::timestamp, value{std::int64_t{0}}, "\"1970-01-01T00:00:00.000Z\"");
    // The same int64 as an int field is a plain number.
    EXPECT_EQ(value_to_json_text(field_type::int64, value{std::int64_t{1795255200123}}), "1795255200123");
}

TEST(CoreValueCodec, ReadsTimestampsWithOffsetsOrEpochMs) {
    EXPECT_EQ(value_from_json_text(field_type::timestamp, "\"2026-11-21T12:00:00+02:00\""),
              std::optional<value>(value{std::int64_t{1795255200000}}));
    EXPECT_EQ(value_from_json_text(field_type::timestamp, "1795255200000"),
              std::optional<value>(value{std::int64_t{1795255200000}}));
    EXPECT_EQ(value_from_json_text(field_type::timestamp, "\"yesterday\""), std::nullopt);
}

TEST(CoreValueCodec, RoundTripsJsonValuesAsCompactText) {
    expect_round_trip(field_type::json, value{std::string(R"({"a":[1,2],"b":null,"c":"x\"y"})")},
                      R"({"a":[1,2],"b":null,"c":"x\"y"})");
    expect_round_trip(field_type::json, value{std::string("[1,true,\"s\"]")}, "[1,true,\"s\"]");
    expect_round_trip(field_type::json, value{std::string("3")}, "3");
    expect_round_trip(field_type::json, value{std::string("\"text\"")}, "\"text\"");
    // Spaced text comes back compact.
    EXPECT_EQ(value_from_json_text(field_type::json, "{ \"a\" : [ 1 , 2 ] }"),
              std::optional<value>(value{std::string(R"({"a":[1,2]})")}));
}

TEST(CoreValueCodec, NullRoundTripsForEveryType) {
    for (auto type : {field_type::int64, field_type::float64, field_type::boolean, field_type::string,
                      field_type::timestamp, field_type::json}) {
        expect_round_trip(type, value{}, "null");
    }
}

TEST(CoreValueCodec, TypeMismatchIsNullopt) {
    EXPECT_EQ(value_from_json_text(field_type::int64, "\"17\""), std::nullopt);
    EXPECT_EQ(value_from_json_text(field_type::int64, "2.5"), std::nullopt);
    EXPECT_EQ(value_from_json_text(field_type::int64, "true"), std::nullopt);
    EXPECT_EQ(value_from_json_text(field_type::float64, "\"2.5\""), std::nullopt);
    EXPECT_EQ(value_from_json_text(field_type::float64, "false"), std::nullopt);
    EXPECT_EQ(value_from_json_text(field_type::boolean, "1"), std::nullopt);
    EXPECT_EQ(value_from_json_text(field_type::boolean, "\"true\""), std::nullopt);
    EXPECT_EQ(value_from_json_text(field_type::string, "5"), std::nullopt);
    EXPECT_EQ(value_from_json_text(field_type::string, "{\"a\":1}"), std::nullopt);
    EXPECT_EQ(value_from_json_text(field_type::timestamp, "2.5"), std::nullopt);
    EXPECT_EQ(value_from_json_text(field_type::timestamp, "[1]"), std::nullopt);
}

TEST(CoreValueCodec, IntegerOutsideInt64IsNullopt) {
    // The text does not fit the type: it must not wrap around to a different number.
    EXPECT_EQ(value_from_json_text(field_type::int64, "9223372036854775808"), std::nullopt);
    EXPECT_EQ(value_from_json_text(field_type::int64, "18446744073709551615"), std::nullopt);
    EXPECT_EQ(value_from_json_text(field_type::timestamp, "18446744073709551615"), std::nullopt);
}

TEST(CoreValueCodec, MalformedTextIsNullopt) {
    for (auto type : {field_type::int64, field_type::float64, field_type::boolean, field_type::string,
                      field_type::timestamp, field_type::json}) {
        EXPECT_EQ(value_from_json_text(type, ""), std::nullopt) << to_string(type);
        EXPECT_EQ(value_from_json_text(type, "{"), std::nullopt) << to_string(type);
        EXPECT_EQ(value_from_json_text(type, "17 18"), std::nullopt) << to_string(type);
        EXPECT_EQ(value_from_json_text(type, "\"unterminated"), std::nullopt) << to_string(type);
    }
}

}  // namespace
}  // namespace sluice
