"""Counts numbers per key in keyed state: a PyFlink DataStream job of the spec examples.

Arguments: --keys N (default 4) spreads the numbers over N keys; --rate R (default 20) paces
them to about R a second. The count of each key lives in Flink state, so a stateful upgrade
carries it on from the savepoint.
"""

import argparse
import time

from pyflink.common import Types
from pyflink.common.watermark_strategy import WatermarkStrategy
from pyflink.datastream import KeyedProcessFunction, RuntimeContext, StreamExecutionEnvironment
from pyflink.datastream.connectors.number_seq import NumberSequenceSource
from pyflink.datastream.state import ValueStateDescriptor


class Count(KeyedProcessFunction):
    """The running count of each key."""

    def open(self, runtime_context: RuntimeContext):
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))

    def process_element(self, value, ctx):
        total = (self.count.value() or 0) + 1
        self.count.update(total)
        yield value, total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=4)
    parser.add_argument("--rate", type=float, default=20)
    args, _ = parser.parse_known_args()
    pause, keys = 1.0 / args.rate, args.keys

    def paced(number):
        time.sleep(pause)
        return number % keys

    env = StreamExecutionEnvironment.get_execution_environment()
    numbers = env.from_source(NumberSequenceSource(0, 2 ** 62),
                              WatermarkStrategy.no_watermarks(), "numbers").uid("numbers")
    counted = (numbers.map(paced, output_type=Types.LONG()).uid("paced")
               .key_by(lambda key: key, key_type=Types.LONG())
               .process(Count(), output_type=Types.TUPLE([Types.LONG(), Types.LONG()]))
               .uid("count"))
    counted.filter(lambda pair: pair[1] % 1000 == 0).uid("every-1000").print().uid("print")
    env.execute("python-counts")


if __name__ == "__main__":
    main()
