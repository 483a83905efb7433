# callbridge: one image for the web and worker roles.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 callbridge \
 && mkdir -p /data && chown callbridge /data
COPY --from=build /install /usr/local
USER callbridge
WORKDIR /home/callbridge
ENV CALLBRIDGE_DATA_DIR=/data \
    CALLBRIDGE_HOST=0.0.0.0 \
    CALLBRIDGE_PORT=8000 \
    CALLBRIDGE_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["callbridge"]
CMD ["serve"]
