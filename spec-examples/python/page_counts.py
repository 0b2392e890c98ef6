"""Page views counted per page with a Python function: a PyFlink Table API job of the spec
examples (generated clicks, a Python UDF naming each click's page, a grouped count)."""

from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
from pyflink.table.udf import udf


@udf(result_type=DataTypes.STRING())
def page_of(click):
    return f"/page/{click % 5}"


def main():
    tables = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    tables.create_temporary_system_function("page_of", page_of)
    tables.execute_sql("""
        CREATE TABLE clicks (click BIGINT) WITH (
          'connector' = 'datagen', 'rows-per-second' = '5')""")
    tables.execute_sql("""
        CREATE TABLE page_counts (page STRING, view_count BIGINT) WITH ('connector' = 'blackhole')""")
    tables.execute_sql("""
        INSERT INTO page_counts SELECT page_of(click), COUNT(*) FROM clicks
        GROUP BY page_of(click)""")


if __name__ == "__main__":
    main()
