// The read routes write their JSON straight into the body; the text must be exactly what the
// JSON library writes for the same values (clients and the Feast route depend on its forms:
// "5.0" for an integral double, null for NaN, escapes, replaced invalid UTF-8).

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "../../../src/serve/handlers/common.hpp"

namespace sluice::serve {
namespace {

config config_with_every_type() {
    config cfg;
    feature_set_config set;
    set.name = "s";
    const std::pair<const char*, field_type> fields[] = {
        {"i", field_type::int64}, {"d", field_type::float64}, {"b", field_type::boolean},
        {"s", field_type::string},  {"t", field_type::timestamp}, {"j", field_type::json},
    };
    for (const auto& [name, type] : fields) {
        field_config f;
        f.name = name;
        f.type = type;
        set.fields.push_back(f);
    }
    cfg.feature_sets.push_back(set);
    return cfg;
}

std::string direct(const set_view& view, const latest_entry& e) {
    std::string out;
    append_values_json(out, view, view.all, e);
    return out;
}

TEST(RenderJson, DirectTextIsTheLibrarysTextForEveryTypeAndEdgeValue) {
    const config cfg = config_with_every_type();
    const set_catalog catalog(cfg, nullptr);
    const set_view& view = catalog.sets().front();
    const std::vector<std::vector<value>> rows = {
        {std::int64_t{42}, 8343.021, true, std::string("plain"), std::int64_t{1763719200123}, std::string("{\"a\":[1,2]}")},
        {std::int64_t{-9223372036854775807 - 1}, 5.0, false, std::string(""), std::int64_t{0}, std::string("not json")},
        {std::int64_t{0}, std::numeric_limits<double>::quiet_NaN(), true, std::string("quote \" and \\ back"),
         std::int64_t{-1}, std::string("3")},
        {std::int64_t{7}, 1e300, false, std::string("tab\tnew\nline\x01"), std::int64_t{253402300799999},
         std::string("null")},
        {std::int64_t{7}, -0.0, false, std::string("UTF-8 \xc3\xa9\xe2\x82\xac"), std::int64_t{1}, std::string("[]")},
        {std::int64_t{7}, 1e-7, false, std::string("bad \xff\xfe bytes"), std::int64_t{1}, std::string("\"x\"")},
        {std::monostate{}, std::monostate{}, std::monostate{}, std::monostate{}, std::monostate{}, std::monostate{}},
        {std::int64_t{1}, std::numeric_limits<double>::infinity(), true},  // a field added later: null
    };
    for (const auto& values : rows) {
        latest_entry e;
        e.key = "k";
        e.values = values;
        EXPECT_EQ(direct(view, e), dump_json(render_values(view, view.all, e)));
    }
}

TEST(RenderJson, DoublesOfEveryMagnitudeAreWrittenAsTheLibraryWritesThem) {
    const config cfg = config_with_every_type();
    const set_catalog catalog(cfg, nullptr);
    const set_view& view = catalog.sets().front();
    std::uint64_t state = 88172645463325252ull;  // xorshift: any bit pattern, subnormals included
    for (int n = 0; n < 20000; ++n) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        double d = 0;
        std::memcpy(&d, &state, sizeof d);
        if (n % 2) d = static_cast<double>(static_cast<std::int64_t>(state % 2000001) - 1000000) / 1000.0;
        std::string direct_text;
        append_value_json(direct_text, field_type::float64, value{d});
        ASSERT_EQ(direct_text, dump_json(render_value(field_type::float64, value{d}))) << n;
    }
    latest_entry e;
    e.values = {std::int64_t{1}, 1e15};
    EXPECT_EQ(direct(view, e), dump_json(render_values(view, view.all, e)));
}

TEST(RenderJson, StringsAreEscapedAsTheLibraryEscapesThem) {
    for (const std::string s : {"", "a/b c", "\"", "\\", "\x7f", "line\r\n", "\xe2\x82\xac", "\xc3"}) {
        std::string out;
        append_json_string(out, s);
        EXPECT_EQ(out, dump_json(ordered_json(s))) << s;
    }
}

}  // namespace
}  // namespace sluice::serve
