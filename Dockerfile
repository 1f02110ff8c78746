# One image for every alertbutler service; the command picks the verb.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /opt/alertbutler
COPY pyproject.toml README.md ./
COPY services ./services
COPY schemas ./schemas
RUN pip install --no-compile . && useradd --create-home --uid 10001 alertbutler
ENV ALERTBUTLER_SCHEMA_DIR=/opt/alertbutler/schemas
USER alertbutler
ENTRYPOINT ["alertbutler"]
CMD ["--help"]
