/*
 * The SQL runner of flink-gitops: runs the SQL script of a SQLSCRIPT deployment as one Flink job.
 *
 * The agent builds this file with javac against the Flink jars (agent/flink/runner.py), uploads
 * the jar like any job jar and submits it with the script as a program argument. The script is
 * split into statements (semicolons outside quotes and comments end a statement), then:
 *
 *   SET 'key' = 'value'         sets a table/job option (over the deployment's flinkConfiguration)
 *   INSERT INTO ...             added to one statement set: all INSERTs run as ONE job
 *   BEGIN STATEMENT SET / END   accepted (and EXECUTE STATEMENT SET BEGIN ...), no effect
 *   SELECT / WITH / VALUES      refused: a query without INSERT INTO has no sink
 *   anything else (CREATE TEMPORARY TABLE, CREATE FUNCTION, CREATE VIEW, USE ...) executed
 *
 * Modes:
 *   --name NAME --script SCRIPT   submit the job (the job id and parallelism come from Flink's
 *                                 run request); NAME is the job name unless pipeline.name is set
 *   --check FILE...               plan each script with Flink's parser and planner (EXPLAIN),
 *                                 submit nothing, and print one result line per file:
 *                                 FLINK_GITOPS_SQL {"index":0,"ok":false,"line":3,"column":1,...}
 *                                 where line/column are the failing statement's start in the
 *                                 script and message is Flink's own text (positions in it are
 *                                 relative to the statement).
 */
package org.flinkgitops.sql;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.api.StatementSet;
import org.apache.flink.table.api.TableEnvironment;
import org.apache.flink.table.api.bridge.java.StreamTableEnvironment;

public final class SqlRunner {

    static final String RESULT_PREFIX = "FLINK_GITOPS_SQL ";
    private static final Pattern SET = Pattern.compile(
            "(?is)SET\\s+(?:'((?:[^']|'')*)'|([^\\s=]+))\\s*=\\s*(?:'((?:[^']|'')*)'|(.*?))\\s*");
    private static final Pattern STATEMENT_SET_BEGIN = Pattern.compile(
            "(?is)^(EXECUTE\\s+)?STATEMENT\\s+SET\\s+BEGIN\\s");
    private static final Pattern MARKER = Pattern.compile(
            "(?is)(BEGIN\\s+STATEMENT\\s+SET|END)\\s*");

    /** One statement of a script, and where it starts there (1-based line and column). */
    static final class Statement {
        final String text;
        final int line;
        final int column;

        Statement(String text, int line, int column) {
            this.text = text;
            this.line = line;
            this.column = column;
        }

        String keyword() {
            int end = 0;
            while (end < text.length() && Character.isLetter(text.charAt(end))) {
                end++;
            }
            return text.substring(0, end).toUpperCase(Locale.ROOT);
        }
    }

    /** A statement Flink (or this runner) refused, with where it starts in the script. */
    static final class StatementFailed extends RuntimeException {
        final Statement statement;

        StatementFailed(Statement statement, Throwable cause) {
            super("statement at line " + statement.line + ", column " + statement.column
                    + " of the SQL script: " + describe(cause), cause);
            this.statement = statement;
        }
    }

    private SqlRunner() {}

    public static void main(String[] args) throws Exception {
        if (args.length >= 1 && args[0].equals("--check")) {
            for (int index = 1; index < args.length; index++) {
                String script = Files.readString(Path.of(args[index]), StandardCharsets.UTF_8);
                System.out.println(RESULT_PREFIX + check(index - 1, script));
            }
            System.out.flush();
            return;
        }
        String name = null;
        String script = null;
        for (int index = 0; index + 1 < args.length; index += 2) {
            switch (args[index]) {
                case "--name":
                    name = args[index + 1];
                    break;
                case "--script":
                    script = args[index + 1];
                    break;
                default:
                    throw new IllegalArgumentException("unknown argument " + args[index]);
            }
        }
        if (script == null) {
            throw new IllegalArgumentException(
                    "usage: SqlRunner [--name NAME] --script SCRIPT | --check FILE...");
        }
        TableEnvironment tables = environment();
        if (name != null && !tables.getConfig().getOptional(
                org.apache.flink.configuration.PipelineOptions.NAME).isPresent()) {
            tables.getConfig().set(org.apache.flink.configuration.PipelineOptions.NAME, name);
        }
        prepare(tables, script).execute();
    }

    /** The table environment of the job: Flink's context environment when run by Flink. */
    static TableEnvironment environment() {
        return StreamTableEnvironment.create(StreamExecutionEnvironment.getExecutionEnvironment());
    }

    /** Plans one script without running it: a JSON object saying whether Flink accepts it. */
    static String check(int index, String script) {
        try {
            prepare(environment(), script).explain();
            return "{\"index\":" + index + ",\"ok\":true}";
        } catch (StatementFailed failed) {
            return failure(index, failed.statement.line, failed.statement.column,
                    describe(failed.getCause()));
        } catch (Throwable error) {  // planning of the whole statement set (EXPLAIN)
            return failure(index, 0, 0, describe(error));
        }
    }

    private static String failure(int index, int line, int column, String message) {
        return "{\"index\":" + index + ",\"ok\":false,\"line\":" + line + ",\"column\":" + column
                + ",\"message\":" + json(message) + "}";
    }

    /** Executes the script's DDL and SET statements and returns its INSERTs as one set. */
    static StatementSet prepare(TableEnvironment tables, String script) {
        StatementSet inserts = tables.createStatementSet();
        int count = 0;
        Statement last = null;
        for (Statement statement : split(script)) {
            last = statement;
            try {
                count += apply(tables, inserts, statement);
            } catch (RuntimeException | LinkageError error) {
                throw new StatementFailed(statement, error);
            }
        }
        if (count == 0) {
            throw new StatementFailed(last == null ? new Statement("", 1, 1) : last,
                    new IllegalArgumentException("the script has no INSERT statement: a SQL "
                            + "deployment runs its INSERT INTO statements as one job"));
        }
        return inserts;
    }

    /** Carries out one statement; 1 when it was an INSERT (added to `inserts`), else 0. */
    private static int apply(TableEnvironment tables, StatementSet inserts, Statement statement) {
        Matcher begin = STATEMENT_SET_BEGIN.matcher(statement.text);
        if (begin.find()) {  // blank the prefix out, so positions in the statement stay right
            String rest = statement.text.substring(begin.end());
            statement = new Statement(begin.group().replaceAll("[^\\n]", " ") + rest,
                    statement.line, statement.column);
            return apply(tables, inserts, new Statement(statement.text.stripLeading(),
                    lineOf(statement), columnOf(statement)));
        }
        if (MARKER.matcher(statement.text).matches()) {
            return 0;
        }
        switch (statement.keyword()) {
            case "SET":
                Matcher set = SET.matcher(statement.text);
                if (!set.matches()) {
                    throw new IllegalArgumentException(
                            "SET takes 'key' = 'value' (with single quotes): " + statement.text);
                }
                String key = set.group(1) != null ? set.group(1).replace("''", "'") : set.group(2);
                String value = set.group(3) != null ? set.group(3).replace("''", "'")
                        : set.group(4);
                tables.getConfig().getConfiguration().setString(key, value);
                return 0;
            case "INSERT":
                inserts.addInsertSql(statement.text);
                return 1;
            case "SELECT":
            case "WITH":
            case "VALUES":
            case "TABLE":
                throw new IllegalArgumentException("a query without INSERT INTO has no sink: "
                        + "write INSERT INTO <table> " + statement.keyword() + " ...");
            default:
                tables.executeSql(statement.text);
                return 0;
        }
    }

    /** Where the first non-blank character of `statement.text` is in the script. */
    private static int lineOf(Statement statement) {
        String text = statement.text;
        int line = statement.line;
        for (int i = 0; i < text.length() && Character.isWhitespace(text.charAt(i)); i++) {
            if (text.charAt(i) == '\n') {
                line++;
            }
        }
        return line;
    }

    private static int columnOf(Statement statement) {
        String text = statement.text;
        int column = statement.column;
        for (int i = 0; i < text.length() && Character.isWhitespace(text.charAt(i)); i++) {
            column = text.charAt(i) == '\n' ? 1 : column + 1;
        }
        return column;
    }

    /**
     * The statements of a script: text up to each semicolon that is outside quotes ('...',
     * "...", `...`) and comments (-- ..., /* ... *&#47;), each with where it starts. Comments
     * before a statement are not part of it; empty statements are dropped.
     */
    static List<Statement> split(String script) {
        List<Statement> statements = new ArrayList<>();
        StringBuilder text = new StringBuilder();
        int line = 1;
        int column = 1;
        int startLine = 0;
        int startColumn = 0;
        int i = 0;
        while (i < script.length()) {
            char c = script.charAt(i);
            int length = 1;
            boolean significant = !Character.isWhitespace(c);
            if (c == '-' && script.startsWith("--", i)) {
                int end = script.indexOf('\n', i);
                length = (end < 0 ? script.length() : end) - i;
                significant = false;
            } else if (c == '/' && script.startsWith("/*", i)) {
                int end = script.indexOf("*/", i + 2);
                length = (end < 0 ? script.length() : end + 2) - i;
                significant = false;
            } else if (c == '\'' || c == '"' || c == '`') {
                int end = i + 1;
                while (end < script.length()) {
                    if (script.charAt(end) == c) {
                        if (end + 1 < script.length() && script.charAt(end + 1) == c) {
                            end += 2;  // a doubled quote is the quote character itself
                            continue;
                        }
                        break;
                    }
                    end++;
                }
                length = Math.min(end + 1, script.length()) - i;
            } else if (c == ';') {
                if (text.length() > 0) {
                    statements.add(new Statement(text.toString().stripTrailing(), startLine,
                            startColumn));
                    text.setLength(0);
                }
                length = 1;
                significant = false;
            }
            String part = script.substring(i, i + length);
            if (text.length() == 0 && significant) {
                startLine = line;
                startColumn = column;
            }
            if (text.length() > 0 || significant) {
                if (c != ';') {
                    text.append(part);
                }
            }
            for (int k = 0; k < part.length(); k++) {
                if (part.charAt(k) == '\n') {
                    line++;
                    column = 1;
                } else {
                    column++;
                }
            }
            i += length;
        }
        if (text.toString().strip().length() > 0) {
            statements.add(new Statement(text.toString().stripTrailing(), startLine, startColumn));
        }
        return statements;
    }

    /** Flink's messages along the cause chain, each once, without stack frames. */
    static String describe(Throwable error) {
        StringBuilder text = new StringBuilder();
        for (Throwable t = error; t != null; t = t.getCause() == t ? null : t.getCause()) {
            String message = t.getMessage();
            if (message == null || message.isBlank() || text.indexOf(message.strip()) >= 0) {
                continue;
            }
            if (text.length() > 0) {
                text.append("\nCaused by: ");
            }
            text.append(message.strip());
        }
        return text.length() > 0 ? text.toString() : error.getClass().getName();
    }

    static String json(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"':
                    out.append("\\\"");
                    break;
                case '\\':
                    out.append("\\\\");
                    break;
                case '\n':
                    out.append("\\n");
                    break;
                case '\r':
                    out.append("\\r");
                    break;
                case '\t':
                    out.append("\\t");
                    break;
                default:
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        return out.append('"').toString();
    }
}
