-- Views per page, counted since the deployment first started: the counts live in Flink state
-- (the GROUP BY), which a STATEFUL upgrade carries over through a savepoint.
SET 'pipeline.name' = 'page-views';

CREATE TEMPORARY TABLE page_views (
  page    INT,
  visitor STRING
) WITH (
  'connector' = 'datagen',
  'rows-per-second' = '20',
  'fields.page.min' = '1',
  'fields.page.max' = '16'
);

CREATE TEMPORARY TABLE views_per_page (
  page  INT,
  view_count BIGINT,
  PRIMARY KEY (page) NOT ENFORCED
) WITH ('connector' = 'blackhole');

INSERT INTO views_per_page
SELECT page, COUNT(*) AS view_count
FROM page_views
GROUP BY page;
