// Proves the block line reader against a plain getline split: lines across
// block boundaries, CRLF, a last line without a newline, empty lines, and
// over-long lines (skipped whole, reported, memory bounded), on random inputs.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

#include "cs/line_reader.h"
#include "test_support.h"

namespace cs {
namespace {

struct Line {
  std::string text;
  bool too_long;
  bool operator==(const Line&) const = default;
};

std::vector<Line> read_lines(LineReader& reader) {
  std::vector<Line> out;
  std::string_view line;
  bool too_long = false;
  while (reader.next(line, too_long)) {
    out.push_back({std::string(line), too_long});
    EXPECT_EQ(reader.number(), out.size());
  }
  return out;
}

std::vector<Line> read_all(const std::string& input, std::size_t max) {
  std::istringstream in(input);
  LineReader from_stream(in, max);
  auto lines = read_lines(from_stream);
  // The same from a file descriptor.
  test::TempDir dir;
  std::ofstream(dir / "input", std::ios::binary) << input;
  const int fd = ::open((dir / "input").c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  LineReader from_fd(fd, max);
  EXPECT_EQ(read_lines(from_fd), lines);
  EXPECT_EQ(from_fd.read_error(), "");
  ::close(fd);
  return lines;
}

std::vector<Line> reference(const std::string& input, std::size_t max) {
  std::vector<Line> out;
  std::size_t start = 0;
  while (start < input.size()) {
    std::size_t nl = input.find('\n', start);
    std::size_t stop = nl == std::string::npos ? input.size() : nl;
    std::string text = input.substr(start, stop - start);
    if (!text.empty() && text.back() == '\r') text.pop_back();
    bool too_long = text.size() > max;
    out.push_back({too_long ? "" : text, too_long});
    start = stop + 1;
  }
  return out;
}

TEST(LineReaderTest, SmallCases) {
  EXPECT_EQ(read_all("", 10), std::vector<Line>{});
  EXPECT_EQ(read_all("a\nb", 10), (std::vector<Line>{{"a", false}, {"b", false}}));
  EXPECT_EQ(read_all("a\r\n\nb\n", 10), (std::vector<Line>{{"a", false}, {"", false}, {"b", false}}));
  EXPECT_EQ(read_all("0123456789x\nok\n", 10), (std::vector<Line>{{"", true}, {"ok", false}}));
  EXPECT_EQ(read_all("ok\n0123456789x", 10), (std::vector<Line>{{"ok", false}, {"", true}}));
}

// Editors on Windows open a UTF-8 file with a byte order mark. It marks the
// encoding of the whole input, not a character of its first line; anywhere
// else it is left to the line's parser.
TEST(LineReaderTest, AByteOrderMarkOpeningTheInputIsNotPartOfTheFirstLine) {
  const std::string bom = "\xEF\xBB\xBF";
  EXPECT_EQ(read_all(bom + "{\"a\":1}\r\nb\n", 7), (std::vector<Line>{{"{\"a\":1}", false}, {"b", false}}));
  EXPECT_EQ(read_all(bom, 10), std::vector<Line>{});
  EXPECT_EQ(read_all(bom + "\n", 10), (std::vector<Line>{{"", false}}));
  EXPECT_EQ(read_all("a\n" + bom + "b\n", 10), (std::vector<Line>{{"a", false}, {bom + "b", false}}));
  EXPECT_EQ(read_all("\xEF\xBBx\n", 10), (std::vector<Line>{{"\xEF\xBBx", false}}));
}

TEST(LineReaderTest, RandomInputsAcrossBlocksEqualAPlainSplit) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::string input;
    const std::size_t max = 1 + rng() % (3 * LineReader::block_bytes);
    while (input.size() < 4 * LineReader::block_bytes) {
      std::size_t size = rng() % 4 == 0 ? rng() % (2 * max + 2) : rng() % 200;
      input.append(size, static_cast<char>('a' + rng() % 26));
      if (rng() % 10 == 0) input += '\r';
      input += '\n';
    }
    if (rng() % 2) input.append(rng() % 100, 'z');
    ASSERT_EQ(read_all(input, max), reference(input, max)) << "round " << round << " max " << max;
  }
}

TEST(LineReaderTest, APipeWhoseWriterIsIdleIsAPauseAndLinesAcrossWritesJoin) {
  int ends[2];
  ASSERT_EQ(::pipe(ends), 0);
  auto write_all = [&](std::string_view text) {
    ASSERT_EQ(::write(ends[1], text.data(), text.size()), static_cast<ssize_t>(text.size()));
  };
  LineReader reader(ends[0], 100);
  std::string_view line;
  bool too_long = false;
  write_all("first\nsec");
  ASSERT_TRUE(reader.next(line, too_long));
  EXPECT_EQ(line, "first");
  EXPECT_TRUE(reader.input_paused()) << "half a line buffered, nothing more written";
  write_all("ond\nthird\n");
  EXPECT_FALSE(reader.input_paused()) << "more has arrived";
  ASSERT_TRUE(reader.next(line, too_long));
  EXPECT_EQ(line, "second");
  EXPECT_FALSE(reader.input_paused()) << "a whole line is buffered";
  ASSERT_TRUE(reader.next(line, too_long));
  EXPECT_EQ(line, "third");
  ::close(ends[1]);
  EXPECT_FALSE(reader.next(line, too_long));
  EXPECT_FALSE(reader.input_paused()) << "an ended input is not paused";
  EXPECT_EQ(reader.read_error(), "");
  ::close(ends[0]);

  std::istringstream in("a\n");
  LineReader from_stream(in, 100);
  EXPECT_FALSE(from_stream.input_paused()) << "a stream cannot tell";
}

TEST(LineReaderTest, AnInputThatCannotBeReadEndsWithItsReason) {
  test::TempDir dir;
  const int fd = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  LineReader reader(fd, 100);
  std::string_view line;
  bool too_long = false;
  EXPECT_FALSE(reader.next(line, too_long));
  EXPECT_NE(reader.read_error(), "");
  ::close(fd);
}

}  // namespace
}  // namespace cs
