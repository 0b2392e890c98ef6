package com.example.udf;

import org.apache.flink.table.functions.ScalarFunction;

/** A SQL function for the dependency tests: the word in capitals, and a mark (its version). */
public class Shout extends ScalarFunction {
    public static final String MARK = "!";

    public String eval(String word) {
        return word == null ? null : word.toUpperCase() + MARK;
    }
}
